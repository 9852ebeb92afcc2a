"""The inbox: a Redis stream of raw webhook bodies, read by workers through a consumer group.

The stream is both the durable queue (a body is acknowledged to Meta only once it is in it)
and the archive that billing can be recomputed from (entries stay after they are processed,
until ``ARCHIVE_RETENTION_DAYS``). A worker that dies leaves its entries pending in the group;
another worker takes them over with XAUTOCLAIM once they have been idle long enough.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import GROUP, Keys

BODY = b"b"


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    body: bytes

    @property
    def received_ms(self) -> int:
        return int(self.id.split("-", 1)[0])

    @property
    def id_key(self) -> tuple[int, int]:
        """The stream id as a sortable pair."""
        return _id_key(self.id)


class Inbox:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def push(self, body: bytes, ticket_seconds: int = 30) -> tuple[str, bool]:
        """Store ``body``; return its id and whether the caller should queue a drain job."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(self.keys.inbox, {BODY: body})
        pipe.set(self.keys.drain_ticket, 1, nx=True, ex=ticket_seconds)
        pipe.hincrby(self.keys.stats, "webhooks_received", 1)
        entry_id, ticket, _ = pipe.execute()
        return _text(entry_id), bool(ticket)

    def read(self, consumer: str, count: int, block_seconds: float = 0.0) -> list[Entry]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block_seconds``."""
        if count <= 0:
            return []
        block = int(block_seconds * 1000) or None
        streams: dict[Any, Any] = {self.keys.inbox: ">"}
        reply: Any = self.redis.xreadgroup(GROUP, consumer, streams, count=count, block=block)
        return [e for _, found in reply or () for e in _entries(found)]

    def claim_stale(self, consumer: str, min_idle_seconds: float, count: int) -> list[Entry]:
        """Entries another consumer read but never acknowledged (it died), taken over."""
        reply: Any = self.redis.xautoclaim(
            self.keys.inbox, GROUP, consumer, int(min_idle_seconds * 1000), "0-0", count=count
        )
        return list(_entries(reply[1]))

    def ack(self, ids: list[str]) -> None:
        if ids:
            self.redis.xack(self.keys.inbox, GROUP, *ids)

    def backlog(self) -> dict[str, int]:
        """Entries not yet delivered to any worker (lag) and delivered but unacknowledged."""
        try:
            groups = self.redis.xinfo_groups(self.keys.inbox)
        except redis.ResponseError:  # no stream yet
            return {"lag": 0, "pending": 0}
        for group in groups:
            if _text(group["name"]) == GROUP:
                lag = group.get("lag")
                if lag is None:  # Redis cannot tell after a trim: count what follows
                    after = "(" + _text(group["last-delivered-id"])
                    following = self.redis.xrange(self.keys.inbox, after, "+", count=1000)
                    lag = len(codec.entries(following))
                return {"lag": int(lag), "pending": int(group["pending"])}
        return {"lag": int(self.redis.xlen(self.keys.inbox)), "pending": 0}  # no worker yet

    def delivered_too_often(
        self, max_deliveries: int, min_idle_seconds: float, scan: int = 100
    ) -> list[str]:
        """Ids of stale pending entries whose ``max_deliveries`` deliveries all failed."""
        return [
            _text(item["message_id"])
            for item in self._stale(min_idle_seconds, scan)
            if int(item["times_delivered"]) >= max_deliveries
        ]

    def oldest_pending(self) -> tuple[int, int]:
        """The id of the oldest body read but not acknowledged by any worker."""
        summary: Any = self.redis.xpending(self.keys.inbox, GROUP)
        smallest = summary.get("min") if summary else None
        return _id_key(_text(smallest)) if smallest else (2**63, 0)

    def stale_pending(self, min_idle_seconds: float) -> int:
        """How many (up to 100) bodies were read but left unacknowledged that long."""
        return len(self._stale(min_idle_seconds, 100))

    def _stale(self, min_idle_seconds: float, scan: int) -> list[dict[str, Any]]:
        """XPENDING details of the oldest entries idle for ``min_idle_seconds`` or more."""
        reply: Any = self.redis.xpending_range(
            self.keys.inbox, GROUP, "-", "+", scan, idle=int(min_idle_seconds * 1000)
        )
        return list(reply or [])

    def trim(self, retention_seconds: int, now: float | None = None) -> int:
        """Drop archived entries older than the retention, never one not yet processed."""
        cutoff_ms = int(((now or time.time()) - retention_seconds) * 1000)
        floor = self._oldest_unfinished_ms()
        if floor is not None:
            cutoff_ms = min(cutoff_ms, floor)
        return int(self.redis.xtrim(self.keys.inbox, minid=f"{cutoff_ms}-0", approximate=True))

    def _oldest_unfinished_ms(self) -> int | None:
        groups = (
            self.redis.xinfo_groups(self.keys.inbox) if self.redis.exists(self.keys.inbox) else []
        )
        floors = []
        for group in groups:
            last = _text(group["last-delivered-id"])
            floors.append(int(last.split("-")[0]) + 1)
            summary = self.redis.xpending(self.keys.inbox, _text(group["name"]))
            if summary["pending"]:
                floors.append(int(_text(summary["min"]).split("-")[0]))
        return min(floors) if floors else None

    def entries(self, start: str = "-", end: str = "+", batch: int = 500) -> Iterator[Entry]:
        """Every archived entry from ``start`` to ``end`` (ids or ms timestamps), in order."""
        cursor = start
        while True:
            chunk = codec.entries(self.redis.xrange(self.keys.inbox, cursor, end, count=batch))
            if not chunk:
                return
            yield from _entries(chunk)
            cursor = "(" + _text(chunk[-1][0])

    def get(self, entry_id: str) -> Entry | None:
        chunk = codec.entries(self.redis.xrange(self.keys.inbox, entry_id, entry_id, count=1))
        return next(iter(_entries(chunk)), None)


def _entries(raw: Any) -> Iterator[Entry]:
    for entry_id, fields in codec.entries(raw):
        if fields and BODY in fields:  # XAUTOCLAIM returns None fields for deleted entries
            yield Entry(_text(entry_id), fields[BODY])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

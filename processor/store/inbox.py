"""The inbox: Redis streams of raw webhook bodies, read by workers through a consumer group.

The stream is both the durable queue (a body is acknowledged to Meta only once it is in it)
and the archive that billing can be recomputed from (entries stay after they are processed,
until ``ARCHIVE_RETENTION_DAYS``). A worker that dies leaves its entries pending in the group;
another worker takes them over with XAUTOCLAIM once they have been idle long enough.

Shards (``INBOX_SHARDS``, default 1): a body goes to the stream of its business phone number
(``phone_number_id`` of its first change, hashed), so every event of a pair lands in one
shard; a drain job takes a shard's lease and drains it alone (``workers/drain.py``), so one
pair is decided on one worker and compare-and-set conflicts fall near zero. Shard 0 is the
stream ``{p}:inbox`` of an unsharded inbox. A body id is the stream id, suffixed ``@n`` in
shard n > 0 (stream ids of two shards may be equal).
"""

from __future__ import annotations

import heapq
import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import GROUP, Keys

BODY = b"b"
KNOWN_SECONDS = 10.0  # how long a process trusts the shard count it read


@dataclass(frozen=True, slots=True)
class Entry:
    id: str  # the stream id (in its shard's stream)
    body: bytes
    shard: int = 0

    @property
    def received_ms(self) -> int:
        return int(self.id.split("-", 1)[0])

    @property
    def id_key(self) -> tuple[int, int]:
        """The stream id as a sortable pair."""
        return _id_key(self.id)

    @property
    def body_id(self) -> str:
        """The id that names the body everywhere (quarantine, replay): ``<id>[@<shard>]``."""
        return f"{self.id}@{self.shard}" if self.shard else self.id


def split_body_id(body_id: str) -> tuple[str, int]:
    """A body id as (stream id, shard)."""
    stream_id, _, shard = body_id.partition("@")
    return stream_id, int(shard) if shard.isdigit() else 0


def phone_number_of(doc: Any) -> str | None:
    """The ``phone_number_id`` of a webhook document's first change that names one."""
    entries = doc.get("entry") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            value = change.get("value") if isinstance(change, dict) else None
            meta = value.get("metadata") if isinstance(value, dict) else None
            number = meta.get("phone_number_id") if isinstance(meta, dict) else None
            if isinstance(number, str | int) and not isinstance(number, bool):
                return str(number)
    return None


def shard_of(doc: Any, shards: int) -> int:
    """The shard of a webhook document: its phone number's CRC-32 modulo ``shards`` (stable
    across processes and versions); 0 without a phone number."""
    if shards <= 1:
        return 0
    number = phone_number_of(doc)
    return zlib.crc32(number.encode()) % shards if number is not None else 0


class Inbox:
    """The inbox's streams. Methods that name a ``shard`` act on that shard's stream (0: the
    unsharded inbox); the others span every shard ever used."""

    def __init__(self, client: redis.Redis, keys: Keys, shards: int | None = None) -> None:
        self.redis, self.keys = client, keys
        self.configured = shards  # None: as many as were ever used (INBOX_SHARDS elsewhere)
        self._known: int | None = None
        self._known_until = 0.0
        self._recorded = False  # this process has recorded its shard count in Redis
        self._push: Any = None  # the push script (one call: cheaper than a pipeline of three)

    # -- shards ------------------------------------------------------------------------------

    @property
    def shards(self) -> int:
        """How many shards bodies are routed to (INBOX_SHARDS)."""
        return self.configured if self.configured is not None else self.known()

    def known(self) -> int:
        """How many shards may hold bodies: the largest count ever used (a smaller
        INBOX_SHARDS after a larger one leaves bodies in the higher shards, still drained)."""
        if self._known is None or time.monotonic() > self._known_until:
            stored = self.redis.get(self.keys.inbox_shards)
            self._known = max(self.configured or 1, int(stored or 1))
            self._known_until = time.monotonic() + KNOWN_SECONDS
        return self._known

    def stream(self, shard: int) -> str:
        return self.keys.inbox_shard(shard)

    def streams(self) -> list[str]:
        return [self.stream(n) for n in range(self.known())]

    def route(self, body: bytes, doc: Any = None) -> int:
        """The shard of ``body`` (``doc``: its decoded JSON when the caller has it)."""
        if self.shards <= 1:
            return 0
        if doc is None:
            try:
                doc = json.loads(body)
            except ValueError:
                return 0
        return shard_of(doc, self.shards)

    def _record_count(self) -> None:
        """Remember the largest shard count in Redis, so that no shard is ever forgotten
        (a worker configured with fewer shards still drains them all)."""
        count = self.shards
        if count > 1:
            self.redis.eval(_AT_LEAST, 1, self.keys.inbox_shards, count)
            self._known = None
        self._recorded = True

    def ensure_group(self) -> None:
        self._record_count()
        for stream in self.streams():
            try:
                self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # -- one shard ---------------------------------------------------------------------------

    def push(self, body: bytes, ticket_seconds: int = 30, doc: Any = None) -> tuple[str, bool]:
        """Store ``body`` in its shard; return its body id and whether the caller should queue
        a drain job (``doc``: the body's decoded JSON, when the caller has it)."""
        shard = self.route(body, doc)
        if shard and not self._recorded:
            self._record_count()
        if self._push is None:
            self._push = self.redis.register_script(_PUSH)
        keys = [self.stream(shard), self.keys.drain_ticket, self.keys.stats]
        entry_id, ticket = self._push(keys=keys, args=[body, ticket_seconds])
        return Entry(_text(entry_id), b"", shard).body_id, bool(ticket)

    def read(
        self, consumer: str, count: int, block_seconds: float = 0.0, shard: int = 0
    ) -> list[Entry]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block_seconds``."""
        if count <= 0:
            return []
        block = int(block_seconds * 1000) or None
        streams: dict[Any, Any] = {self.stream(shard): ">"}
        reply: Any = self.redis.xreadgroup(GROUP, consumer, streams, count=count, block=block)
        return [e for _, found in reply or () for e in _entries(found, shard)]

    def claim_stale(
        self, consumer: str, min_idle_seconds: float, count: int, shard: int = 0
    ) -> list[Entry]:
        """Entries another consumer read but never acknowledged (it died), taken over."""
        reply: Any = self.redis.xautoclaim(
            self.stream(shard), GROUP, consumer, int(min_idle_seconds * 1000), "0-0", count=count
        )
        return list(_entries(reply[1], shard))

    def ack(self, ids: list[str], shard: int = 0) -> None:
        if ids:
            self.redis.xack(self.stream(shard), GROUP, *ids)

    def delivered_too_often(
        self, max_deliveries: int, min_idle_seconds: float, scan: int = 100, shard: int = 0
    ) -> list[str]:
        """Stream ids of stale pending entries whose ``max_deliveries`` deliveries all
        failed."""
        return [
            _text(item["message_id"])
            for item in self._stale(min_idle_seconds, scan, shard)
            if int(item["times_delivered"]) >= max_deliveries
        ]

    def _stale(self, min_idle_seconds: float, scan: int, shard: int = 0) -> list[dict[str, Any]]:
        """XPENDING details of the oldest entries idle for ``min_idle_seconds`` or more."""
        reply: Any = self.redis.xpending_range(
            self.stream(shard), GROUP, "-", "+", scan, idle=int(min_idle_seconds * 1000)
        )
        return list(reply or [])

    def lease(self, shard: int, holder: str, seconds: float) -> bool:
        """Take (or keep) shard ``shard`` for ``holder``; False when another job holds it."""
        ms = max(1, int(seconds * 1000))
        return bool(self.redis.eval(_LEASE, 1, self.keys.inbox_lease(shard), holder, ms))

    def release(self, shard: int, holder: str) -> None:
        self.redis.eval(_RELEASE, 1, self.keys.inbox_lease(shard), holder)

    # -- every shard -------------------------------------------------------------------------

    def shard_backlogs(self) -> list[dict[str, Any]]:
        """Per shard: lag, pending and the lease holder (None when free), one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        count = self.known()
        for n in range(count):
            pipe.xinfo_groups(self.stream(n))
        for n in range(count):
            pipe.get(self.keys.inbox_lease(n))
        replies = pipe.execute(raise_on_error=False)
        found = []
        for n in range(count):
            groups, holder = replies[n], replies[count + n]
            lag, pending = self._group_backlog(n, groups)
            found.append({"lag": lag, "pending": pending, "holder": holder})
        return found

    def backlog(self) -> dict[str, int]:
        """Entries not yet delivered to any worker (lag) and delivered but unacknowledged."""
        if self.known() == 1:
            try:
                groups = self.redis.xinfo_groups(self.keys.inbox)
            except redis.ResponseError:  # no stream yet
                return {"lag": 0, "pending": 0}
            lag, pending = self._group_backlog(0, groups)
            return {"lag": lag, "pending": pending}
        shards = self.shard_backlogs()
        return {"lag": sum(s["lag"] for s in shards), "pending": sum(s["pending"] for s in shards)}

    def _group_backlog(self, shard: int, groups: Any) -> tuple[int, int]:
        if isinstance(groups, Exception):  # no stream yet
            return 0, 0
        stream = self.stream(shard)
        for group in groups:
            if _text(group["name"]) == GROUP:
                lag = group.get("lag")
                if lag is None:  # Redis cannot tell after a trim: count what follows
                    after = "(" + _text(group["last-delivered-id"])
                    following = self.redis.xrange(stream, after, "+", count=1000)
                    lag = len(codec.entries(following))
                return int(lag), int(group["pending"])
        return int(self.redis.xlen(stream)), 0  # no worker yet

    def oldest_pending(self) -> tuple[int, int]:
        """The id of the oldest body read but not acknowledged by any worker (any shard)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams():
            pipe.xpending(stream, GROUP)
        oldest = (2**63, 0)
        for summary in pipe.execute(raise_on_error=False):
            smallest = summary.get("min") if isinstance(summary, dict) else None
            if smallest:
                oldest = min(oldest, _id_key(_text(smallest)))
        return oldest

    def stale_pending(self, min_idle_seconds: float) -> int:
        """How many (up to 100 a shard) bodies were read but left unacknowledged that long."""
        return sum(
            len(self._stale(min_idle_seconds, 100, n))
            for n in range(self.known())
            if self.redis.exists(self.stream(n))
        )

    def trim(self, retention_seconds: int, now: float | None = None) -> int:
        """Drop archived entries older than the retention, never one not yet processed."""
        trimmed = 0
        for stream in self.streams():
            cutoff_ms = int(((now or time.time()) - retention_seconds) * 1000)
            floor = self._oldest_unfinished_ms(stream)
            if floor is not None:
                cutoff_ms = min(cutoff_ms, floor)
            trimmed += int(self.redis.xtrim(stream, minid=f"{cutoff_ms}-0", approximate=True))
        return trimmed

    def _oldest_unfinished_ms(self, stream: str) -> int | None:
        groups = self.redis.xinfo_groups(stream) if self.redis.exists(stream) else []
        floors = []
        for group in groups:
            last = _text(group["last-delivered-id"])
            floors.append(int(last.split("-")[0]) + 1)
            summary = self.redis.xpending(stream, _text(group["name"]))
            if summary["pending"]:
                floors.append(int(_text(summary["min"]).split("-")[0]))
        return min(floors) if floors else None

    def archived(self) -> int:
        """Bodies kept in the archive (every shard)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams():
            pipe.xlen(stream)
        return sum(int(n) for n in pipe.execute())

    def entries(self, start: str = "-", end: str = "+", batch: int = 500) -> Iterator[Entry]:
        """Every archived entry from ``start`` to ``end`` (ids or ms timestamps), in order of
        arrival across the shards."""
        shards = [self._shard_entries(n, start, end, batch) for n in range(self.known())]
        if len(shards) == 1:
            return shards[0]
        return heapq.merge(*shards, key=lambda e: (e.id_key, e.shard))

    def _shard_entries(self, shard: int, start: str, end: str, batch: int) -> Iterator[Entry]:
        cursor, stream = start, self.stream(shard)
        while True:
            chunk = codec.entries(self.redis.xrange(stream, cursor, end, count=batch))
            if not chunk:
                return
            yield from _entries(chunk, shard)
            cursor = "(" + _text(chunk[-1][0])

    def get(self, body_id: str) -> Entry | None:
        stream_id, shard = split_body_id(body_id)
        found = self.redis.xrange(self.stream(shard), stream_id, stream_id, count=1)
        return next(iter(_entries(codec.entries(found), shard)), None)


# Store a body, ask for a drain job when none is queued (the ticket), count the body.
_PUSH = """
local id = redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])  -- 'b': BODY
local ticket = redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'webhooks_received', 1)
return {id, ticket and 1 or 0}
"""
_AT_LEAST = """
local current = tonumber(redis.call('GET', KEYS[1]) or '1')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _entries(raw: Any, shard: int = 0) -> Iterator[Entry]:
    for entry_id, fields in codec.entries(raw):
        if fields and BODY in fields:  # XAUTOCLAIM returns None fields for deleted entries
            yield Entry(_text(entry_id), fields[BODY], shard)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

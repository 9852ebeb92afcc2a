"""The records feed as each sink reads it: its consumer group, its lease, parked versions.

Each sink has its own consumer group (``sink:<name>``) on every records feed of the ledger, so
each sees every record version, in feed order: one feed (``{p}:records``) on a standalone
ledger, one per hash tag (portfolio) on a cluster (``LEDGER_REDIS_CLUSTER``), where a record's
versions all go to its portfolio's feed. The feeds live on the ledger's Redis; the sink's own
state (lease, parked and replayed versions, counters) on ``REDIS_URL``'s.

One process at a time delivers for a sink: it holds the sink's
lease (renewed while it works; another process takes over when it lapses, for instance after a
``kill -9``) and first takes over every version still pending in the group, so the target gets
them in order before anything newer.

A version the target rejected for good is parked (``{p}:sink:<name>:parked``) with its reason;
``replay`` queues parked versions on ``{p}:sink:<name>:replay``, which the lease holder delivers
before new versions.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import Keys

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
PARKED_MAXLEN = 1_000_000
FEEDS_REFRESH = 5.0  # seconds between listings of a cluster's feeds (new portfolios)


def group_name(sink: str) -> str:
    return f"sink:{sink}"


@dataclass(frozen=True)
class Entry:
    entry_id: str
    body: str
    source: str  # "feed" or "replay"
    feed: str = ""  # the feed stream it was read from (source "feed")


class Feeds:
    """The records feeds of a ledger: ``{p}:records`` standalone, one per hash tag on a cluster
    (the tags registry, listed again at most every ``refresh`` seconds: new portfolios)."""

    def __init__(self, client: redis.Redis, keys: Keys, refresh: float = FEEDS_REFRESH) -> None:
        self.redis, self.keys, self.refresh = client, keys, refresh
        self._names: list[str] = []
        self._listed = float("-inf")

    def names(self) -> list[str]:
        if not self.keys.cluster:
            return [self.keys.feed]
        now = time.monotonic()
        if now - self._listed >= self.refresh:
            tags = sorted(codec.text(t) for t in self.redis.smembers(self.keys.tags))
            self._names, self._listed = [self.keys.feed_of(tag) for tag in tags], now
        return self._names


class SinkFeed:
    """One sink's view of the feeds (every call is one or two Redis round trips per feed).

    ``client``/``keys``: the sink's state (``REDIS_URL``); ``ledger``/``ledger_keys``: where
    the feeds are (``LEDGER_REDIS_URL``; the same by default)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        sink: str,
        consumer: str,
        ledger: redis.Redis | None = None,
        ledger_keys: Keys | None = None,
    ) -> None:
        self.redis, self.keys, self.sink, self.consumer = client, keys, sink, consumer
        self.ledger = client if ledger is None else ledger
        self.feeds = Feeds(self.ledger, keys if ledger_keys is None else ledger_keys)
        self.group = group_name(sink)
        self._grouped: set[str] = set()
        self._turn = 0  # the feed a read starts with (fair across portfolios)

    # -- the group -------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the group at the start of each feed (a new sink receives every version the
        feed still holds; so does a feed that appears later, for a new portfolio)."""
        for feed in self.feeds.names():
            if feed in self._grouped:
                continue
            try:
                self.ledger.xgroup_create(feed, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._grouped.add(feed)

    def take_over(self) -> int:
        """Claim every pending version of the group (a previous holder's) for this consumer."""
        self.ensure_group()
        taken = 0
        for feed in self.feeds.names():
            start = "0-0"
            while True:
                reply: Any = self.ledger.xautoclaim(
                    feed, self.group, self.consumer, 0, start_id=start, count=500
                )
                start, ids = codec.text(reply[0]), reply[1]
                taken += len(ids)
                if start == "0-0":
                    self._forget_others(feed)
                    break
        return taken

    def _forget_others(self, feed: str) -> None:
        """Drop the group's other consumers (earlier holders; their pending versions are ours
        now), so that restarts do not pile up consumers."""
        for consumer in self.ledger.xinfo_consumers(feed, self.group):
            name = codec.text(consumer["name"])
            if name != self.consumer and int(consumer["pending"]) == 0:
                self.ledger.xgroup_delconsumer(feed, self.group, name)

    def read(self, count: int) -> list[Entry]:
        """Queued replays first, then this consumer's pending versions, then new ones; a batch
        comes from one feed (stream ids are unique only within a feed)."""
        replays = self.redis.xrange(self.keys.sink_replay(self.sink), count=count)
        if replays:
            return [_entry(i, f, "replay") for i, f in replays]
        self.ensure_group()
        names = self.feeds.names()
        for k in range(len(names)):
            feed = names[(self._turn + k) % len(names)]
            entries = self._read_feed(feed, count)
            if entries:
                self._turn = (self._turn + k + 1) % len(names)
                return entries
        return []

    def _read_feed(self, feed: str, count: int) -> list[Entry]:
        for start in ("0", ">"):
            streams: dict[Any, Any] = {feed: start}
            reply: Any = self.ledger.xreadgroup(self.group, self.consumer, streams, count=count)
            items = [(i, f) for _, found in reply or [] for i, f in found]
            entries = [_entry(i, f, "feed", feed) for i, f in items if f]
            if entries:
                return entries
            gone = [codec.text(i) for i, f in items if not f]
            if gone:  # pending versions trimmed from the feed come back without fields
                self.ledger.xack(feed, self.group, *gone)
        return []

    def done(self, entries: list[Entry], parked: dict[str, str]) -> None:
        """Acknowledge a delivered batch; park the versions rejected for good first (one MULTI
        on the sink's Redis), then acknowledge them on their feed (a crash between the two
        parks a version that is delivered again: at least once, never lost)."""
        now = int(time.time())
        pipe = self.redis.pipeline(transaction=True)
        for entry in entries:
            why = parked.get(entry.entry_id)
            if why is not None:
                fields: dict[Any, Any] = {
                    "r": entry.body,
                    "reason": why,
                    "feed_id": entry.entry_id,
                    "at": now,
                }
                pipe.xadd(self.keys.sink_parked(self.sink), fields, maxlen=PARKED_MAXLEN)
        replays = [e.entry_id for e in entries if e.source == "replay"]
        if replays:
            pipe.xdel(self.keys.sink_replay(self.sink), *replays)
        stats = self.keys.sink_stats
        pipe.hincrby(stats, f"{self.sink}:delivered", len(entries) - len(parked))
        if parked:
            pipe.hincrby(stats, f"{self.sink}:parked", len(parked))
        pipe.hdel(self.keys.sink_state(self.sink), "last_error", "retry_at")
        pipe.execute()
        by_feed: dict[str, list[str]] = {}
        for entry in entries:
            if entry.source == "feed":
                by_feed.setdefault(entry.feed, []).append(entry.entry_id)
        for feed, ids in by_feed.items():
            self.ledger.xack(feed, self.group, *ids)

    def failed(self, error: str, retry_at: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(self.keys.sink_stats, f"{self.sink}:failed", 1)
        pipe.hset(
            self.keys.sink_state(self.sink),
            mapping={"last_error": error[:500], "retry_at": f"{retry_at:.3f}"},
        )
        pipe.execute()

    # -- the lease -------------------------------------------------------------------------

    def acquire(self, seconds: float) -> bool:
        key, ms = self.keys.sink_lease(self.sink), int(seconds * 1000)
        if self.redis.set(key, self.consumer, nx=True, px=ms):
            self.redis.hset(self.keys.sink_state(self.sink), "holder", self.consumer)
            return True
        return bool(self.redis.eval(RENEW, 1, key, self.consumer, ms))

    def renew(self, seconds: float) -> bool:
        """Extend the lease if this consumer holds it (never takes it)."""
        key, ms = self.keys.sink_lease(self.sink), int(seconds * 1000)
        return bool(self.redis.eval(RENEW, 1, key, self.consumer, ms))

    def release(self) -> None:
        self.redis.eval(RELEASE, 1, self.keys.sink_lease(self.sink), self.consumer)


def _entry(entry_id: Any, fields: Any, source: str, feed: str = "") -> Entry:
    mapping = codec.mapping(fields)
    return Entry(codec.text(entry_id), codec.text(mapping[b"r"]), source, feed)


# -- parked versions ---------------------------------------------------------------------------


def parked(client: redis.Redis, keys: Keys, sink: str, limit: int) -> list[dict[str, Any]]:
    """The newest parked versions of a sink, with their reasons."""
    items = []
    for entry_id, fields in codec.entries(client.xrevrange(keys.sink_parked(sink), count=limit)):
        f = {codec.text(k): codec.text(v) for k, v in codec.mapping(fields).items()}
        try:
            record = json.loads(f["r"])
        except ValueError:  # parked because it was not a record
            record = {}
        items.append(
            {"id": codec.text(entry_id), "sink": sink, "reason": f["reason"],
             "feed_id": f["feed_id"], "parked_at": int(f["at"]),
             "record_id": record.get("record_id"), "version": record.get("version"),
             "waba_id": record.get("waba_id"), "billing_month": record.get("billing_month")}
        )  # fmt: skip
    return items


def replay(client: redis.Redis, keys: Keys, sink: str, ids: list[str] | None) -> int:
    """Queue parked versions (``ids``, or all when None) for delivery again; returns how many."""
    source = keys.sink_parked(sink)
    if ids is None:
        found = codec.entries(client.xrange(source))
    else:
        found = [item for i in ids for item in codec.entries(client.xrange(source, i, i))]
    pipe = client.pipeline(transaction=True)
    for entry_id, fields in found:
        pipe.xadd(keys.sink_replay(sink), {"r": codec.mapping(fields)[b"r"]})
        pipe.xdel(source, entry_id)
    pipe.execute()
    return len(found)


def lag(
    client: redis.Redis,
    keys: Keys,
    sink: str,
    ledger: redis.Redis | None = None,
    ledger_keys: Keys | None = None,
) -> dict[str, Any]:
    """Versions not yet delivered, summed over the feeds: new (``lag``), read but
    unacknowledged, parked, queued."""
    group = group_name(sink)
    ledger = client if ledger is None else ledger
    missed = behind = pending = 0
    for feed in Feeds(ledger, keys if ledger_keys is None else ledger_keys).names():
        info = None
        with contextlib.suppress(redis.ResponseError):  # no feed yet
            info = next(
                (g for g in ledger.xinfo_groups(feed) if codec.text(g["name"]) == group), None
            )
        behind += _lag_of(ledger, feed, info)
        missed += _missed(ledger, feed, info)
        pending += int(info["pending"]) if info else 0
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.sink_parked(sink))
    pipe.xlen(keys.sink_replay(sink))
    pipe.hgetall(keys.sink_state(sink))
    pipe.pttl(keys.sink_lease(sink))
    parked_n, queued, state, ttl = pipe.execute()
    state = {codec.text(k): codec.text(v) for k, v in codec.mapping(state).items()}
    return {
        "missed": missed,
        "lag": behind,
        "pending": pending,
        "parked": int(parked_n),
        "replay_queued": int(queued),
        "holder": state.get("holder") if ttl and ttl > 0 else None,
        "last_error": state.get("last_error"),
    }


def _lag_of(client: redis.Redis, feed: str, info: Any) -> int:
    if info is None:
        return int(client.xlen(feed)) if client.exists(feed) else 0
    if info.get("lag") is not None:
        return int(info["lag"])
    last = codec.text(info["last-delivered-id"])  # lag unknown (entries deleted): count them
    return len(codec.entries(client.xrange(feed, f"({last}", "+", count=1_000_000)))


def _missed(client: redis.Redis, feed: str, info: Any) -> int:
    """Versions trimmed from the feed (RECORDS_FEED_MAXLEN) before the sink read them.

    When the group's position is before the feed's first entry, every version it read is
    gone, so the trimmed versions it never read are: added - still held - read."""
    if info is None:
        return 0
    last, read = codec.text(info["last-delivered-id"]), info.get("entries-read")
    if read is None and last != "0-0":
        return 0  # unknown
    stream: Any = client.xinfo_stream(feed)
    first, added = stream.get("first-entry"), stream.get("entries-added")
    if not first or added is None:
        return 0
    if _id(last) >= _id(codec.text(first[0])):
        return 0
    return max(0, int(added) - int(stream["length"]) - int(read or 0))


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)

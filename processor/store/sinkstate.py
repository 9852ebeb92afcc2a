"""What a delta sink sent per record (see processor/core/deltas.py), kept per billing month.

``{p}:sink:<name>:sent:<month>`` maps record_id -> the ``Sent`` state, under the month the state
was sent for. A record moves between months only by a few days of charge time, so a version is
looked up under its own month and the two months beside it. The hashes live as long as the
month's records (``RECORDS_RETENTION_DAYS``).
"""

from __future__ import annotations

from datetime import date

import redis

from processor.core.deltas import Sent
from processor.store.keys import Keys


def near_months(month: str) -> list[str]:
    first = date.fromisoformat(f"{month}-01")
    before = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    after = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return [month, before.strftime("%Y-%m"), after.strftime("%Y-%m")]


class SentStore:
    def __init__(self, client: redis.Redis, keys: Keys, sink: str, ttl: int) -> None:
        self.redis, self.keys, self.sink, self.ttl = client, keys, sink, ttl

    def load(self, records: list[tuple[str, str]]) -> dict[str, Sent]:
        """The sent state of each (record_id, billing_month), where one exists."""
        pipe = self.redis.pipeline(transaction=False)
        for rid, month in records:
            for m in near_months(month):
                pipe.hget(self.keys.sink_sent(self.sink, m), rid)
        replies = pipe.execute()
        found: dict[str, Sent] = {}
        for i, (rid, _) in enumerate(records):
            states = [Sent.load(r) for r in replies[3 * i : 3 * i + 3] if r is not None]
            if states:
                found[rid] = max(states, key=lambda s: s.version)
        return found

    def save(self, changes: dict[str, tuple[Sent | None, Sent]]) -> None:
        """Write the new states (record_id -> (state before, state after)) in one MULTI."""
        if not changes:
            return
        pipe = self.redis.pipeline(transaction=True)
        touched = set()
        for rid, (before, after) in changes.items():
            month = str(after.dims["billing_month"])
            key = self.keys.sink_sent(self.sink, month)
            pipe.hset(key, rid, after.dump())
            touched.add(key)
            if before is not None and before.dims["billing_month"] != month:
                pipe.hdel(self.keys.sink_sent(self.sink, str(before.dims["billing_month"])), rid)
        for key in touched:
            pipe.expire(key, self.ttl)
        pipe.execute()

"""Quarantine: what could not be applied, with its reason, kept for listing and replay."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import Keys

MAXLEN = 100_000


class Quarantine:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def add_many(
        self, items: list[dict[str, Any]], now: float | None = None, pipe: Any = None
    ) -> None:
        """Quarantine ``items`` (``reason``, ``body_id``; maybe ``path``, ``item``); in
        ``pipe`` when given (the caller executes it), else at once."""
        if not items:
            return
        at = str(int((now or time.time()) * 1000))
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        for item in items:
            fields: dict[Any, Any] = {k: _text(v) for k, v in item.items() if v is not None}
            fields["at"] = at
            pipe.xadd(self.keys.quarantine, fields, maxlen=MAXLEN, approximate=True)
        pipe.hincrby(self.keys.stats, "events_quarantined", len(items))
        if own:
            pipe.execute()

    def list(self, limit: int = 100, before: str | None = None) -> dict[str, Any]:
        """Newest first; ``before`` is the ``next`` cursor of the previous page."""
        end = f"({before}" if before else "+"
        raw = codec.entries(self.redis.xrevrange(self.keys.quarantine, end, "-", count=limit + 1))
        items = [_decode(entry_id, fields) for entry_id, fields in raw[:limit]]
        following = items[-1]["id"] if len(raw) > limit else None
        return {"items": items, "next": following, "total": self.redis.xlen(self.keys.quarantine)}

    def get(self, item_id: str) -> dict[str, Any] | None:
        raw = codec.entries(self.redis.xrange(self.keys.quarantine, item_id, item_id))
        return _decode(*raw[0]) if raw else None

    def remove(self, item_id: str) -> None:
        self.redis.xdel(self.keys.quarantine, item_id)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": entry_id.decode()}
    for key, value in fields.items():
        item[key.decode()] = value.decode(errors="replace")
    return item


def replay(client: redis.Redis, keys: Keys, item_ids: list[str]) -> dict[str, int]:
    """Queue the archived bodies of quarantined items again, and drop those items.

    Items of one body are replayed once. Applying a body again is safe: the events that were
    applied are recognised; the ones that still fail are quarantined anew.
    """
    from processor.store.inbox import Inbox

    quarantine, inbox = Quarantine(client, keys), Inbox(client, keys)
    done: dict[str, int] = {"replayed_bodies": 0, "missing_bodies": 0, "items": 0}
    bodies: set[str] = set()
    for item_id in item_ids:
        item = quarantine.get(item_id)
        if item is None:
            continue
        body_id = item.get("body_id")
        if body_id and body_id not in bodies:
            entry = inbox.get(body_id)
            if entry is None:
                done["missing_bodies"] += 1
                continue
            inbox.push(entry.body)
            bodies.add(body_id)
            done["replayed_bodies"] += 1
        quarantine.remove(item_id)
        done["items"] += 1
    return done


def all_ids(client: redis.Redis, keys: Keys) -> list[str]:
    found = codec.entries(client.xrange(keys.quarantine, "-", "+"))
    return [codec.text(entry_id) for entry_id, _ in found]

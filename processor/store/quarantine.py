"""Quarantine: what could not be applied, with its reason, kept for listing and replay."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import Keys

MAXLEN = 100_000
SIBLING_WINDOW_MS = 10_000


class Quarantine:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def add_many(
        self, items: list[dict[str, Any]], now: float | None = None, pipe: Any = None
    ) -> list[str]:
        """Quarantine ``items`` (``reason``, ``body_id``; maybe ``path``, ``item``) and return
        their ids; in ``pipe`` when given (the caller executes it: the first ``len(items)``
        replies are the ids, and this returns none), else at once."""
        if not items:
            return []
        at = str(int((now or time.time()) * 1000))
        own = pipe is None
        pipe = self.redis.pipeline(transaction=False) if own else pipe
        for item in items:
            fields: dict[Any, Any] = {k: _text(v) for k, v in item.items() if v is not None}
            fields["at"] = at
            pipe.xadd(self.keys.quarantine, fields, maxlen=MAXLEN, approximate=True)
        pipe.hincrby(self.keys.stats, "events_quarantined", len(items))
        if not own:
            return []
        return [codec.text(i) for i in pipe.execute()[: len(items)]]

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

    def of_body(
        self, body_id: str, near: str, window_ms: int = SIBLING_WINDOW_MS
    ) -> builtins.list[str]:
        """Ids of the items of body ``body_id`` quarantined around item ``near`` (the items
        of one body are added together, in one round trip)."""
        ms = int(near.split("-", 1)[0])
        found = codec.entries(
            self.redis.xrange(
                self.keys.quarantine, str(max(0, ms - window_ms)), str(ms + window_ms), count=10_000
            )
        )
        return [
            codec.text(entry_id)
            for entry_id, fields in found
            if codec.text(fields.get(b"body_id", b"")) == body_id
        ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    item: dict[str, Any] = {"id": entry_id.decode()}
    for key, value in fields.items():
        item[key.decode()] = value.decode(errors="replace")
    return item


@dataclass
class Replayed:
    """What a replay did: bodies queued again, bodies gone from the archive, items dropped."""

    replayed_bodies: int = 0
    missing_bodies: int = 0
    removed: list[str] = field(default_factory=list)


def replay(client: redis.Redis, keys: Keys, item_ids: list[str]) -> Replayed:
    """Queue the archived bodies of quarantined items again, and drop those items.

    Items of one body are replayed once, and every item of a replayed body is dropped (its
    events are parsed and applied again: the ones that were applied are recognised; the ones
    that still fail are quarantined anew). An item whose body is no longer archived stays.
    """
    from processor.store.inbox import Inbox

    quarantine, inbox = Quarantine(client, keys), Inbox(client, keys)
    done = Replayed()
    bodies: set[str] = set()
    for item_id in item_ids:
        item = quarantine.get(item_id)
        if item is None:
            continue  # replayed already (with another item of its body)
        body_id = item.get("body_id")
        drop = [item_id]
        if body_id and body_id not in bodies:
            entry = inbox.get(body_id)
            if entry is None:
                done.missing_bodies += 1
                continue
            drop = sorted({item_id, *quarantine.of_body(body_id, item_id)})
            inbox.push(entry.body)
            bodies.add(body_id)
            done.replayed_bodies += 1
        for dropped in drop:
            quarantine.remove(dropped)
        done.removed.extend(drop)
    return done


def all_ids(client: redis.Redis, keys: Keys) -> list[str]:
    found = codec.entries(client.xrange(keys.quarantine, "-", "+"))
    return [codec.text(entry_id) for entry_id, _ in found]

"""Quarantine: what could not be applied, with its reason, kept for listing and replay."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from processor.store.keys import Keys

MAXLEN = 100_000


class Quarantine:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    def add_many(self, items: list[dict[str, Any]], now: float | None = None) -> None:
        """Quarantine ``items`` (``reason``, ``body_id``; maybe ``path``, ``item``)."""
        if not items:
            return
        at = str(int((now or time.time()) * 1000))
        pipe = self.redis.pipeline(transaction=False)
        for item in items:
            fields = {k: _text(v) for k, v in item.items() if v is not None}
            pipe.xadd(self.keys.quarantine, {**fields, "at": at}, maxlen=MAXLEN, approximate=True)
        pipe.hincrby(self.keys.stats, "events_quarantined", len(items))
        pipe.execute()

    def list(self, limit: int = 100, before: str | None = None) -> dict[str, Any]:
        """Newest first; ``before`` is the ``next`` cursor of the previous page."""
        end = f"({before}" if before else "+"
        raw = self.redis.xrevrange(self.keys.quarantine, end, "-", count=limit + 1)
        items = [_decode(entry_id, fields) for entry_id, fields in raw[:limit]]
        following = items[-1]["id"] if len(raw) > limit else None
        return {"items": items, "next": following, "total": self.redis.xlen(self.keys.quarantine)}

    def get(self, item_id: str) -> dict[str, Any] | None:
        raw = self.redis.xrange(self.keys.quarantine, item_id, item_id)
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

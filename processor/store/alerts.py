"""Alerts: things a person should hear about (a budget threshold crossed, a template Meta
recategorised, money drifting from Meta's figures), recorded once each and delivered later.

An alert is recorded under a deterministic id built from its ``kind`` and a ``dedup`` key that
names the occurrence (for a budget: WABA, month and threshold). Recording is one atomic script:
the first caller stores the alert and queues it for delivery; every later caller, in any worker,
after any restart, gets ``None``. Delivery (the signed POST to ``ALERT_WEBHOOK_URL``) reads the
outbox stream and updates the alert's ``delivery`` state in place.

Keys (see :class:`processor.store.keys.Keys`):
  {p}:alerts         hash    alert id -> JSON of the alert (with its delivery state)
  {p}:alerts:outbox  stream  alert ids waiting for delivery, in the order they were recorded
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis

from processor.store.keys import Keys

_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1])
return 1
"""
OUTBOX_MAXLEN = 100_000


def alert_id(kind: str, dedup: str) -> str:
    """The alert's id: stable for one occurrence, so receivers can deduplicate on it."""
    digest = hashlib.sha256(f"{kind}\x1f{dedup}".encode()).hexdigest()[:24]
    return f"{kind}:{digest}"


class Alerts:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys
        self._record = client.register_script(_RECORD)

    def record(
        self,
        *,
        kind: str,
        dedup: str,
        data: dict[str, Any],
        waba_id: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """Record the alert once; return it when this call recorded it, ``None`` if it was
        already there."""
        ident = alert_id(kind, dedup)
        alert: dict[str, Any] = {
            "id": ident,
            "kind": kind,
            "waba_id": waba_id,
            "created_at": int((now if now is not None else time.time()) * 1000),
            "data": data,
            "delivery": {"state": "pending", "attempts": 0, "last_error": None},
        }
        blob = json.dumps(alert, sort_keys=True, separators=(",", ":"), default=str)
        created = self._record(
            keys=[self.keys.alerts, self.keys.alerts_outbox],
            args=[ident, blob, OUTBOX_MAXLEN],
        )
        return alert if int(created) == 1 else None

    def get(self, alert_id_: str) -> dict[str, Any] | None:
        raw = self.redis.hget(self.keys.alerts, alert_id_)
        return json.loads(raw) if raw else None

    def save(self, alert: dict[str, Any]) -> None:
        """Store an alert's updated delivery state (the alert must exist)."""
        blob = json.dumps(alert, sort_keys=True, separators=(",", ":"), default=str)
        self.redis.hset(self.keys.alerts, alert["id"], blob)

    def all(self) -> list[dict[str, Any]]:
        """Every alert, newest first."""
        alerts = [json.loads(v) for v in self.redis.hvals(self.keys.alerts)]
        return sorted(alerts, key=lambda a: (a["created_at"], a["id"]), reverse=True)

"""The last reconciliation result of each WABA-month, and a summary per WABA for /metrics.

Keys: ``{p}:recon:{waba_id}:{month}`` (the result JSON, kept ``RECORDS_RETENTION_DAYS``),
``{p}:recon:summary`` (waba_id -> ``{month, fetched_at, currency, counts, drift}`` of its
latest successful run); failures are counted in ``{p}:stats`` (``reconcile_failures``).
"""

from __future__ import annotations

import json
from typing import Any

import redis

from processor.core.reconcile import counts, drift
from processor.store import codec
from processor.store.keys import Keys


class Reconciliations:
    def __init__(self, client: redis.Redis, keys: Keys, retention_seconds: int) -> None:
        self.redis, self.keys, self.retention = client, keys, retention_seconds

    def save(self, result: dict[str, Any], succeeded_at: float) -> None:
        waba, month = result["waba_id"], result["month"]
        summary = {
            "month": month,
            "fetched_at": result["fetched_at"],
            "succeeded_at": succeeded_at,
            "currency": result["currency"],
            "counts": counts(result),
            "drift": format(drift(result), "f"),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.reconciliation(waba, month), json.dumps(result), ex=self.retention)
        pipe.hset(self.keys.reconciliation_summary, waba, json.dumps(summary))
        pipe.hincrby(self.keys.stats, "reconcile_runs", 1)
        pipe.execute()

    def failed(self) -> None:
        self.redis.hincrby(self.keys.stats, "reconcile_failures", 1)

    def get(self, waba_id: str, month: str) -> dict[str, Any] | None:
        raw = self.redis.get(self.keys.reconciliation(waba_id, month))
        return json.loads(raw) if raw else None

    def summaries(self) -> dict[str, dict[str, Any]]:
        raw = codec.mapping(self.redis.hgetall(self.keys.reconciliation_summary))
        return {codec.text(k): json.loads(v) for k, v in raw.items()}

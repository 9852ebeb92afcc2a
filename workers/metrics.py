"""Worker-side counters, kept in Redis so that /metrics sees every worker on every machine."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from processor.store.inbox import Entry
from processor.store.ledger import ApplyResult

if TYPE_CHECKING:
    from processor.context import Context

# Upper bounds (seconds) of the processing-latency histogram: webhook received -> applied.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def record_batch(
    ctx: Context, entries: list[Entry], events: int, result: ApplyResult, pipe: Any
) -> None:
    """Count a batch (in ``pipe``, which the caller executes)."""
    now_ms = time.time() * 1000
    stats = ctx.keys.stats
    pipe.hincrby(stats, "bodies_processed", len(entries))
    pipe.hincrby(stats, "events_parsed", events)
    pipe.hincrby(stats, "events_applied", result.applied)
    pipe.hincrby(stats, "events_duplicate", result.duplicates)
    pipe.hincrby(stats, "events_unchanged", result.unchanged)
    pipe.hincrby(stats, "records_written", result.records)
    pipe.hincrby(stats, "apply_conflicts", result.conflicts)
    buckets: Counter[str] = Counter()
    total = 0.0
    for entry in entries:
        seconds = max(0.0, (now_ms - entry.received_ms) / 1000)
        buckets[next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")] += 1
        total += seconds
    for bucket, n in buckets.items():
        pipe.hincrby(ctx.keys.latency, bucket, n)
    pipe.hincrbyfloat(ctx.keys.latency, "sum", total)

"""Periodic reconciliation: every ``RECONCILE_EVERY_HOURS`` (0 = off), one RQ job reconciles
every WABA that has records and a token, for its current month (in its own time zone) and, during
the first 48 hours of a month, the month before. Days within the last 48 hours are marked
``provisional`` in the result (Meta's figures for them may still change).

Which worker queues the job is decided by a Redis key with the period as its lifetime
(``SET NX EX``): with many workers, one job per period.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from processor.context import Context
from processor.core.reconcile import PROVISIONAL_SECONDS
from processor.graph import GraphError

log = logging.getLogger(__name__)
JOB = "workers.reconcile.reconcile_all"


def schedule_if_due(ctx: Context, now: float | None = None) -> bool:
    """Queue the periodic job if reconciliation is on and no job ran in this period."""
    hours = ctx.settings.reconcile_every_hours
    if hours <= 0 or not (ctx.settings.meta_access_token or ctx.settings.meta_access_tokens):
        return False
    period = max(60, int(hours * 3_600))
    if not ctx.redis.set(ctx.keys.reconciliation_lock, int(now or time.time()), nx=True, ex=period):
        return False
    ctx.queue.enqueue(JOB, job_timeout=3_600, result_ttl=3_600, description="reconcile with Meta")
    log.info("queued the periodic reconciliation (every %s h)", hours)
    return True


def due_months(ctx: Context, waba_id: str, now: float) -> list[str]:
    """The WABA's current local month, and the previous one while it is still provisional."""
    tz = ctx.ratebook.waba(waba_id).timezone
    months = {
        datetime.fromtimestamp(now, tz).strftime("%Y-%m"),
        datetime.fromtimestamp(now - PROVISIONAL_SECONDS, tz).strftime("%Y-%m"),
    }
    return sorted(months)


def reconcile_all(now: float | None = None) -> dict[str, Any]:
    """The RQ job: reconcile every WABA with records and a token; one failure does not stop the
    others."""
    from processor.reconciling import run, token_for
    from workers.drain import context

    ctx = context()
    moment = now if now is not None else time.time()
    wabas = sorted({waba for waba, _ in ctx.queries.months() if token_for(ctx, waba)})
    done: dict[str, Any] = {"reconciled": 0, "failed": 0}
    for waba in wabas:
        for month in due_months(ctx, waba, moment):
            try:
                run(ctx, waba, month)
                done["reconciled"] += 1
            except GraphError as exc:
                done["failed"] += 1
                log.warning(
                    "reconciliation of WABA %s %s failed: %s (fbtrace_id %s)",
                    waba, month, exc.message, exc.fbtrace_id,
                )  # fmt: skip
    return done

"""What drain jobs tell the RQ dashboard: their description and ``meta``.

A queued drain job says how many bodies wait in the inbox (refreshed by the janitor while it
waits); a finished one says what it processed. The last drain's summary is also kept under
``keys.drain_last`` for ``wa-billing status``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rq.job import Job, get_current_job

if TYPE_CHECKING:
    from processor.context import Context

QUEUED_PREFIX = "drain the webhook inbox"
REFRESH_SCAN = 20  # queued jobs looked at by the janitor for a waiting drain job


def queued_description(backlog: dict[str, int]) -> str:
    """``drain the webhook inbox: 12 bodies wait (3 being processed)``."""
    lag, pending = backlog["lag"], backlog["pending"]
    text = f"{QUEUED_PREFIX}: {'1 body waits' if lag == 1 else f'{lag} bodies wait'}"
    return text + (f" ({pending} being processed)" if pending else "")


def finished_description(meta: dict[str, Any]) -> str:
    """``drained 19 bodies, 900 events (900 applied, 0 duplicate, 0 unchanged, 1 quarantined),
    900 records, 0 conflicts; inbox lag 0, pending 0; 0.14 s`` (short enough for one line of
    the dashboard's Jobs view)."""
    m = meta
    return (
        f"drained {_n(m['bodies'], 'body', 'bodies')}, {_n(m['events'], 'event')}"
        f" ({m['applied']} applied, {m['duplicates']} duplicate, {m['unchanged']} unchanged,"
        f" {m['quarantined']} quarantined), {_n(m['records'], 'record')},"
        f" {_n(m['conflicts'], 'conflict')}; inbox lag {m['lag']}, pending {m['pending']};"
        f" {m['seconds']:.2f} s"
    )


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def finish(
    ctx: Context, totals: dict[str, int], backlog: dict[str, int], seconds: float
) -> dict[str, Any]:
    """Record what a drain did on its job (meta and description) and as the last drain."""
    meta: dict[str, Any] = {
        "kind": "drain",
        **totals,
        "lag": backlog["lag"],
        "pending": backlog["pending"],
        "seconds": round(seconds, 3),
    }
    job = get_current_job()
    if job is not None:
        job.meta.update(meta)
        job.description = finished_description(meta)
        job.save_meta()  # type: ignore[no-untyped-call]  # description: saved when RQ ends it
    last = {
        **meta,
        "job_id": job.id if job is not None else None,
        "worker": job.worker_name if job is not None else None,
        "ended_at": time.time(),
    }
    ctx.redis.set(ctx.keys.drain_last, json.dumps(last), ex=ctx.settings.drain_result_ttl_seconds)
    return meta


def last_drain(ctx: Context) -> dict[str, Any] | None:
    raw = ctx.redis.get(ctx.keys.drain_last)
    if raw is None:
        return None
    found: dict[str, Any] = json.loads(raw)
    return found


# Rewrite a job's description only while it is still a queued drain job (a worker may have
# started and finished it since it was read).
_REFRESH = """
local status = redis.call('HGET', KEYS[1], 'status')
local current = redis.call('HGET', KEYS[1], 'description')
if status == 'queued' and current and string.sub(current, 1, #ARGV[1]) == ARGV[1]
   and current ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'description', ARGV[2])
  return 1
end
return 0
"""


def refresh_waiting(ctx: Context, backlog: dict[str, int]) -> int:
    """Rewrite the description of queued drain jobs with the bodies now waiting."""
    ids = ctx.queue.get_job_ids(0, REFRESH_SCAN - 1)
    script = ctx.redis.register_script(_REFRESH)
    text = queued_description(backlog)
    return sum(int(script(keys=[Job.key_for(i)], args=[QUEUED_PREFIX, text])) for i in ids)

"""``wa-billing status``: the pipeline's state, for terminals (a table) and scripts (JSON).

The same picture the RQ dashboard gives, plus what it cannot see: the inbox stream (lag, and
bodies each worker holds) and the quarantine.
"""

from __future__ import annotations

import json
import time
from typing import IO, TYPE_CHECKING, Any

import redis
from rq import Queue, Worker
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.worker import BaseWorker

from processor.store import codec
from processor.store.keys import GROUP
from workers import failures, jobs

if TYPE_CHECKING:
    from processor.context import Context


def pipeline_state(ctx: Context, now: float | None = None) -> dict[str, Any]:
    """Inbox, pending per worker, queue, failed, workers and the last drain, as plain data."""
    now = now or time.time()
    queue = ctx.queue
    backlog = ctx.inbox.backlog()
    failed_ids = [
        codec.text(i) for i in ctx.redis.zrange(FailedJobRegistry(queue=queue).key, 0, -1)
    ]
    quarantined = sum(1 for i in failed_ids if failures.item_id_of(i))
    return {
        "inbox": {
            "lag": backlog["lag"],
            "pending": backlog["pending"],
            "archived": ctx.inbox.archived(),
        },
        "pending_per_worker": _consumers(ctx),
        "queue": {
            "name": queue.name,
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).get_job_count(cleanup=False),
            "finished": FinishedJobRegistry(queue=queue).get_job_count(cleanup=False),
            "failed": len(failed_ids),
            "deferred": DeferredJobRegistry(queue=queue).get_job_count(cleanup=False),
            "scheduled": _scheduled(queue),
        },
        "failed": {
            "jobs": len(failed_ids),
            "quarantined_jobs": quarantined,
            "other_jobs": len(failed_ids) - quarantined,
            "quarantine": int(ctx.redis.xlen(ctx.keys.quarantine)),
        },
        "workers": [_worker(w, now) for w in Worker.all(queue=queue)],
        "last_drain": _last_drain(ctx, now),
    }


def _scheduled(queue: Queue) -> int:
    registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    return registry.get_job_count(cleanup=False)


def _consumers(ctx: Context) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}  # a consumer of several shards: summed
    for stream in ctx.inbox.streams():
        try:
            raw = ctx.redis.xinfo_consumers(stream, GROUP)
        except redis.ResponseError:  # no stream or group yet
            continue
        for c in raw:
            name, idle = codec.text(c["name"]), round(int(c["idle"]) / 1000, 1)
            seen = found.setdefault(name, {"consumer": name, "pending": 0, "idle_seconds": idle})
            seen["pending"] += int(c["pending"])
            seen["idle_seconds"] = min(seen["idle_seconds"], idle)
    return sorted(found.values(), key=lambda c: (-c["pending"], c["consumer"]))


def _worker(worker: BaseWorker, now: float) -> dict[str, Any]:
    job = worker.get_current_job()
    heartbeat = worker.last_heartbeat.timestamp() if worker.last_heartbeat else None
    return {
        "name": worker.name,
        "host": worker.hostname,
        "pid": worker.pid,
        "state": str(worker.get_state()),
        "current_job": job.description if job is not None else None,
        "successful_jobs": worker.successful_job_count,
        "failed_jobs": worker.failed_job_count,
        "heartbeat_seconds_ago": round(now - heartbeat, 1) if heartbeat else None,
    }


def _last_drain(ctx: Context, now: float) -> dict[str, Any] | None:
    last = jobs.last_drain(ctx)
    if last is None:
        return None
    last["seconds_ago"] = round(now - float(last.get("ended_at", now)), 1)
    return last


def print_state(state: dict[str, Any], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json.dumps(state, indent=2, sort_keys=True) + "\n")
        return
    rows: list[tuple[str, str]] = []
    inbox, queue, failed = state["inbox"], state["queue"], state["failed"]
    rows.append(("inbox lag", f"{inbox['lag']} bodies not yet read by a worker"))
    rows.append(("inbox pending", f"{inbox['pending']} bodies read, not yet acknowledged"))
    for c in state["pending_per_worker"]:
        rows.append((f"  pending {c['consumer']}", f"{c['pending']} (idle {c['idle_seconds']} s)"))
    rows.append(
        (
            f"queue {queue['name']}",
            f"{queue['queued']} queued, {queue['started']} started,"
            f" {queue['finished']} finished, {queue['deferred']} deferred,"
            f" {queue['scheduled']} scheduled",
        )
    )
    rows.append(
        (
            "failed",
            f"{failed['jobs']} failed jobs ({failed['quarantined_jobs']} quarantined items,"
            f" {failed['other_jobs']} other); quarantine holds {failed['quarantine']}",
        )
    )
    rows.append(("workers", str(len(state["workers"]))))
    for w in state["workers"]:
        doing = w["current_job"] or "-"
        rows.append((f"  {w['name']}", f"{w['state']}; {w['successful_jobs']} ok, "
                     f"{w['failed_jobs']} failed; now: {doing}"))  # fmt: skip
    last = state["last_drain"]
    if last is None:
        rows.append(("last drain", "none yet"))
    else:
        rows.append(("last drain", f"{last['seconds_ago']} s ago by {last.get('worker') or '-'}"))
        rows.append(("", jobs.finished_description(last)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key.ljust(width)}  {value}\n")

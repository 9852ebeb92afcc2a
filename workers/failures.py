"""Quarantine in RQ's failed registry: one failed job per quarantined item.

Every quarantined body or event is mirrored by a failed job ``q-<item id>`` in the queue's
:class:`~rq.registry.FailedJobRegistry`, so that the RQ dashboard's failed count is the size
of the quarantine and each failure shows its reason. The job's function replays the item's
body: requeueing it (the dashboard's Requeue button) does what ``wa-billing quarantine replay``
does, and a body that fails again is quarantined again, as a new failed job with the new reason.

What a failed job shows (description, error text, meta) is built from the item's reason, path
and ids only: never the quarantined item itself (message text, phone numbers). Reasons are
cleaned (long digit runs masked, no HTML: the dashboard's job page renders it unescaped).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rq.job import Job, JobStatus, get_current_job
from rq.registry import FailedJobRegistry
from rq.results import Result

from processor.store import codec
from processor.store.quarantine import Replayed, replay

if TYPE_CHECKING:
    from processor.context import Context

log = logging.getLogger(__name__)

JOB_PREFIX = "q-"
REPLAY_FUNC = "workers.failures.replay_quarantined"
KEEP = -1  # RQ: a failed job and its error are kept until they are removed (as quarantine)
RECONCILE_EVERY = 60
_DIGITS = re.compile(r"\d{7,}")
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}(@\d{1,6})?")  # @n: shard n of the inbox
_HTML = str.maketrans({"<": "‹", ">": "›", "&": "+"})


class BodyGone(Exception):
    """The archived body of a quarantined item was trimmed: it cannot be replayed."""


def job_id(item_id: str) -> str:
    return JOB_PREFIX + item_id


def item_id_of(job_id_: str) -> str | None:
    return job_id_[len(JOB_PREFIX) :] if job_id_.startswith(JOB_PREFIX) else None


def clean(text: str, limit: int = 200) -> str:
    """``text`` safe to show: digit runs that could be phone numbers masked, no HTML."""
    masked = _DIGITS.sub(lambda m: "…" + m.group()[-3:], text)
    return masked.translate(_HTML)[:limit]


def stream_id(value: str | None) -> str:
    """An inbox or quarantine id (``<ms>-<seq>``) as is; anything else is not shown."""
    return value if value and _STREAM_ID.fullmatch(value) else "?"


def error_text(item_id: str, fields: Mapping[str, str]) -> str:
    """The failed job's error: the reason, then where it comes from (ids and path only)."""
    where = f"quarantine item {item_id}, body {stream_id(fields.get('body_id'))}"
    if fields.get("path"):
        where += f", at {clean(fields['path'], 120)}"
    return f"{clean(fields.get('reason', 'unknown'))}\n{where}"


def description(fields: Mapping[str, str]) -> str:
    what = "event" if fields.get("path") else "body"
    reason = clean(fields.get("reason", "unknown"))
    return f"quarantined {what}: {reason} (body {stream_id(fields.get('body_id'))})"


def record(ctx: Context, items: Iterable[tuple[str, Mapping[str, str]]]) -> int:
    """Add a failed job for each ``(item id, fields)`` quarantined; return how many."""
    registry = FailedJobRegistry(queue=ctx.queue)
    pipe = ctx.redis.pipeline(transaction=False)
    count = 0
    for item_id, fields in items:
        job = _failed_job(ctx, item_id, fields)
        error = error_text(item_id, fields)
        job.save(pipeline=pipe)  # with its meta (the registry saves it without)
        registry.add(job, ttl=KEEP, exc_string=error, pipeline=pipe)
        Result.create_failure(job, KEEP, exc_string=error, worker_name="quarantine", pipeline=pipe)
        count += 1
    if count:
        pipe.execute()
    return count


def record_new(ctx: Context, rejected: list[dict[str, Any]], item_ids: list[Any]) -> None:
    """Mirror items just quarantined (``rejected`` as given to the quarantine, with the ids
    it got); a failure here is repaired by :func:`reconcile`."""
    shown = ("reason", "body_id", "path")
    items = [
        (codec.text(i), {k: str(v) for k, v in item.items() if k in shown and v is not None})
        for i, item in zip(item_ids, rejected, strict=True)
    ]
    try:
        record(ctx, items)
    except Exception as exc:  # the quarantine holds them; reconcile adds their jobs
        log.warning("could not add failed jobs for quarantined items: %s", exc.__class__.__name__)


def _failed_job(ctx: Context, item_id: str, fields: Mapping[str, str]) -> Job:
    settings = ctx.settings
    meta = {
        "quarantine_id": item_id,
        "body_id": stream_id(fields.get("body_id")),
        "reason": clean(fields.get("reason", "")),
        "path": clean(fields.get("path", ""), 120),
    }
    job = Job.create(
        REPLAY_FUNC,
        args=(item_id,),
        connection=ctx.redis,
        id=job_id(item_id),
        origin=ctx.queue.name,
        status=JobStatus.FAILED,
        description=description(fields),
        meta=meta,
        result_ttl=settings.drain_result_ttl_seconds,
        failure_ttl=KEEP,
        timeout=max(60, int(settings.drain_max_seconds * 6)),
    )
    ms = int(item_id.split("-", 1)[0])
    job.created_at = job.enqueued_at = job.ended_at = datetime.fromtimestamp(ms / 1000, UTC)
    return job


def forget(ctx: Context, item_ids: Iterable[str], keep: str | None = None) -> None:
    """Remove the failed jobs of quarantine items that are gone (except job ``keep``)."""
    registry = FailedJobRegistry(queue=ctx.queue)
    pipe = ctx.redis.pipeline(transaction=False)
    for item_id in item_ids:
        jid = job_id(item_id)
        if jid == keep:
            continue
        pipe.zrem(registry.key, jid)
        pipe.lrem(ctx.queue.key, 0, jid)  # requeued but not run yet
        pipe.delete(Job.key_for(jid), Result.get_key(jid))  # type: ignore[no-untyped-call]
    if len(pipe):
        pipe.execute()


def replay_items(ctx: Context, item_ids: list[str], keep: str | None = None) -> Replayed:
    """Replay quarantined items (``wa-billing quarantine replay``, the dashboard's Requeue):
    queue their bodies again, drop the items and their failed jobs, queue a drain job."""
    done = replay(ctx.redis, ctx.keys, item_ids)
    forget(ctx, done.removed, keep=keep)
    if done.replayed_bodies:
        ctx.enqueue_drain()
    return done


def replay_quarantined(item_id: str) -> dict[str, Any]:
    """The job of a quarantined item, run when it is requeued: replay its body."""
    from workers.drain import context

    ctx = context()
    job = get_current_job()
    own = job.id if job is not None else None
    item = ctx.quarantine.get(item_id)
    if item is None:
        summary = f"quarantine item {item_id} was replayed already"
        done = Replayed()
    else:
        done = replay_items(ctx, [item_id], keep=own)
        if done.missing_bodies:
            raise BodyGone(
                f"body {item.get('body_id')} of quarantine item {item_id} is no longer archived"
                " (ARCHIVE_RETENTION_DAYS): it cannot be replayed"
            )
        summary = (
            f"replayed body {stream_id(item.get('body_id'))} of quarantine item {item_id}"
            f" ({len(done.removed)} items): queued for draining again"
        )
    if job is not None:
        job.description = summary
        job.meta.update(replayed_at=time.time(), replayed_items=len(done.removed))
        job.save_meta()  # type: ignore[no-untyped-call]
    return {"replayed_bodies": done.replayed_bodies, "items": len(done.removed)}


def reconcile(ctx: Context, chunk: int = 500) -> dict[str, int]:
    """Make the failed registry match the quarantine both ways: add the jobs of items that
    have none (a worker died between the two writes), drop the jobs of items that are gone
    (trimmed past QUARANTINE's cap, or removed by hand)."""
    added = removed = 0
    cursor = "-"
    while True:
        found = codec.entries(ctx.redis.xrange(ctx.keys.quarantine, cursor, "+", count=chunk))
        if not found:
            break
        pipe = ctx.redis.pipeline(transaction=False)
        for entry_id, _ in found:
            pipe.exists(Job.key_for(job_id(codec.text(entry_id))))
        missing = [
            (codec.text(entry_id), _fields(raw))
            for (entry_id, raw), exists in zip(found, pipe.execute(), strict=True)
            if not exists
        ]
        added += record(ctx, missing)
        cursor = "(" + codec.text(found[-1][0])
    registry = FailedJobRegistry(queue=ctx.queue)
    ours = [i for i in map(item_id_of, map(codec.text, ctx.redis.zrange(registry.key, 0, -1))) if i]
    for start in range(0, len(ours), chunk):
        part = ours[start : start + chunk]
        pipe = ctx.redis.pipeline(transaction=False)
        for item_id in part:
            pipe.xrange(ctx.keys.quarantine, item_id, item_id, count=1)
        gone = [i for i, there in zip(part, pipe.execute(), strict=True) if not there]
        forget(ctx, gone)
        removed += len(gone)
    if added or removed:
        log.info("failed registry: added %d jobs, removed %d (quarantine changed)", added, removed)
    return {"added": added, "removed": removed}


def reconcile_now_and_then(ctx: Context) -> dict[str, int] | None:
    """:func:`reconcile`, at most once per ``RECONCILE_EVERY`` seconds across all workers."""
    if not ctx.redis.set(ctx.keys.failures_reconcile, 1, nx=True, ex=RECONCILE_EVERY):
        return None
    return reconcile(ctx)


def _fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {codec.text(k): codec.text(v) for k, v in raw.items()}

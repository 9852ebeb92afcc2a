"""Cleaning up after tests that run RQ jobs (job hashes live outside the test's key prefix)."""

from __future__ import annotations

from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from processor.context import Context


def drop_jobs(ctx: Context) -> None:
    """Delete the jobs of the test's queue: quarantine jobs are kept without expiry."""
    queue = ctx.queue
    ids = set(queue.get_job_ids())
    for registry in (FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry):
        ids.update(registry(queue=queue).get_job_ids(cleanup=False))
    keys = [k for i in ids for k in (Job.key_for(i), f"rq:results:{i}", f"rq:executions:{i}")]
    if keys:
        ctx.redis.delete(*keys)
    ctx.redis.srem("rq:queues", queue.key)

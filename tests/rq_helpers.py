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


def drain_with_workers(ctx: Context, env: dict[str, str], count: int) -> None:
    """``count`` ``wa-billing worker`` processes (environment ``env``), one drain job queued for
    each, until the inbox is drained; then they are stopped."""
    import os
    import subprocess
    import sys

    from tests.fault_helpers import wait_for

    full = {**os.environ, **env}
    workers = [subprocess.Popen([sys.executable, "-m", "processor.cli", "worker"], env=full)
               for _ in range(count)]  # fmt: skip
    try:
        for _ in workers:
            ctx.enqueue_drain()
        wait_for(lambda: sum(ctx.inbox.backlog().values()) == 0, 120, "the inbox to be drained")
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=15)

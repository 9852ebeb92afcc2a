"""Start an RQ worker for the drain queue, with the janitor beside it."""

from __future__ import annotations

import logging

from rq import SimpleWorker

from processor.context import Context
from workers.drain import use_context
from workers.janitor import Janitor

log = logging.getLogger(__name__)


def kick(ctx: Context) -> bool:
    """Queue a drain job if the inbox holds unprocessed bodies; return whether one was."""
    backlog = ctx.inbox.backlog()
    if backlog["lag"] or backlog["pending"]:
        ctx.enqueue_drain()
        return True
    return False


def run_worker(ctx: Context, *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queue (until stopped, or until it is empty with ``burst``)."""
    use_context(ctx)
    ctx.inbox.ensure_group()
    janitor = None
    if burst:
        kick(ctx)
    else:
        janitor = Janitor(ctx)
        janitor.start()
    worker = SimpleWorker([ctx.queue], connection=ctx.redis, name=name)
    try:
        return bool(worker.work(burst=burst, logging_level=ctx.settings.log_level))
    finally:
        if janitor is not None:
            janitor.stop()

"""The janitor: a thread in every worker process that keeps work from being stranded.

Every few seconds it queues a drain job when the inbox holds bodies no job is coming for (the
web process could not queue one, or a worker died holding some), and now and then it trims the
archive to its retention. It keeps the description of a queued drain job up to date with the
bodies waiting, and the failed registry matching the quarantine (workers/failures.py). It never
touches billing state.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from processor.context import Context
from workers import failures, jobs
from workers.reconcile import schedule_if_due

log = logging.getLogger(__name__)
TRIM_EVERY = 60.0


class Janitor(threading.Thread):
    def __init__(self, ctx: Context) -> None:
        super().__init__(name="wa-billing-janitor", daemon=True)
        self.ctx = ctx
        self.stopping = threading.Event()
        self.last_trim = 0.0

    def run(self) -> None:
        while not self.stopping.wait(self.ctx.settings.janitor_interval_seconds):
            try:
                self.tick()
            except redis.RedisError as exc:
                log.warning(
                    "janitor: Redis unavailable (%s); will try again", exc.__class__.__name__
                )

    def tick(self) -> None:
        ctx, settings = self.ctx, self.ctx.settings
        ctx.inbox.ensure_group()  # the stream may have been deleted, or Redis emptied
        backlog = ctx.inbox.backlog()
        stranded = backlog["lag"] or ctx.inbox.stale_pending(settings.claim_idle_seconds)
        if stranded and ctx.queue.count == 0:
            # no job is queued: whatever a ticket says (its job may have been lost), queue one
            ctx.redis.set(ctx.keys.drain_ticket, 1, ex=30)
            log.info("janitor: queueing a drain job for %s stranded bodies", stranded)
            ctx.enqueue_drain()
        elif backlog["lag"] or backlog["pending"]:
            jobs.refresh_waiting(ctx, backlog)  # what a queued drain job says waits
        failures.reconcile_now_and_then(ctx)  # quarantine == failed registry
        schedule_if_due(ctx)  # periodic reconciliation with Meta (RECONCILE_EVERY_HOURS)
        if time.monotonic() - self.last_trim > TRIM_EVERY:
            self.last_trim = time.monotonic()
            trimmed = ctx.inbox.trim(settings.archive_retention_seconds)
            if trimmed:
                log.info("janitor: trimmed %d archived bodies past retention", trimmed)

    def stop(self) -> None:
        self.stopping.set()

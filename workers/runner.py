"""Start an RQ worker for the drain queue, with the janitor beside it."""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time

import redis
from rq import SimpleWorker

from processor.context import Context
from workers.courier import CourierThread
from workers.drain import consumer_name, use_context
from workers.janitor import Janitor

log = logging.getLogger(__name__)


def kick(ctx: Context) -> bool:
    """Queue a drain job if the inbox holds unprocessed bodies and no job is queued (it will
    take them); return whether one was queued."""
    backlog = ctx.inbox.backlog()
    if (backlog["lag"] or backlog["pending"]) and ctx.queue.count == 0:
        ctx.enqueue_drain()
        return True
    return False


def default_name() -> str:
    """``<host>-<pid>``: the Workers view tells machines apart (also the inbox consumer)."""
    return consumer_name()


def run_worker(ctx: Context, *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queue (until stopped, or until it is empty with ``burst``)."""
    use_context(ctx)
    if not _wait_for_redis(ctx):
        return False
    ctx.inbox.ensure_group()
    janitor = courier = None
    if burst:
        kick(ctx)
    else:
        janitor = Janitor(ctx)
        janitor.start()
        courier = start_courier(ctx)
    base = name or default_name()
    try:
        for generation in itertools.count():
            # a worker started again after losing Redis may find its old entry still alive
            worker_name = base if generation == 0 else f"{base}.{generation}"
            worker = SimpleWorker([ctx.queue], connection=ctx.redis, name=worker_name)
            try:
                worked = bool(worker.work(burst=burst, logging_level=ctx.settings.log_level))
            except redis.RedisError as exc:  # RQ's own bookkeeping failed on the way out
                log.warning("worker lost Redis (%s)", exc.__class__.__name__)
                worked = False
            asked = getattr(worker, "_shutdown_requested_date", None) is not None  # SIGTERM/INT
            if burst or asked or not _wait_for_redis(ctx):
                return worked
            log.warning("worker stopped without being asked to (Redis lost?): starting again")
        return False  # not reached
    finally:
        if janitor is not None:
            janitor.stop()
        if courier is not None:
            courier.stop()


def start_courier(ctx: Context) -> CourierThread | None:
    """The alert courier beside the worker, when ALERT_WEBHOOK_URL is set."""
    if not ctx.settings.alert_webhook_url:
        return None
    from workers.drain import consumer_name

    courier = CourierThread(ctx, consumer_name())
    courier.start()
    return courier


def _wait_for_redis(ctx: Context, give_up: float = 3_600.0) -> bool:
    """Wait (with backoff) until Redis answers; False if it stays away for ``give_up``, or if
    SIGTERM/SIGINT asks the worker to stop meanwhile."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    deadline, pause = time.monotonic() + give_up, 0.2
    while time.monotonic() < deadline and not stop.is_set():
        try:
            ctx.redis.ping()
            return True
        except redis.RedisError:
            stop.wait(pause)
            pause = min(pause * 2, 5.0)
    return False

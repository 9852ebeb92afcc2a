"""``wa-billing sink``: deliver the records feed to every configured sink.

One loop in one process serves every sink named in ``SINKS``; for each it holds the sink's lease
(another process standing by takes over when a holder dies), takes over what a previous holder
left pending, and then delivers in feed order: parked versions queued for replay, its pending
versions, new versions; a batch is acknowledged (and rejected versions parked) only after the
target took it. A target that is down or refuses for a while (network error, timeout, 5xx, 429,
401/403) is retried with exponential backoff up to ``SINK_MAX_BACKOFF_SECONDS``, while the other
sinks flow on. ``--burst`` delivers what is there and exits (status 1 when a sink could not).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import redis

from processor.context import Context
from processor.sinks.base import Outcome, Sink, Transient, Version
from processor.store.sinkfeed import Entry, SinkFeed

log = logging.getLogger(__name__)

IDLE_PAUSE = 0.5
BURST_ATTEMPTS = 5


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Loop:
    sink: Sink
    feed: SinkFeed
    holding: bool = False
    failures: int = 0
    retry_at: float = 0.0
    finished: bool = False  # burst: nothing left, gave up, or another process holds it
    complete: bool = True  # burst: everything was delivered
    delivered: int = field(default=0)


class Runner:
    def __init__(self, ctx: Context, sinks: list[Sink], consumer: str | None = None) -> None:
        self.ctx, self.settings = ctx, ctx.settings
        name = consumer or consumer_name()
        self.loops = [Loop(s, self._feed(s.name, name)) for s in sinks]
        self.stop = threading.Event()

    def _feed(self, sink: str, consumer: str) -> SinkFeed:
        ctx = self.ctx
        return SinkFeed(ctx.redis, ctx.keys, sink, consumer, ctx.ledger_redis, ctx.ledger_keys)

    def run(self, burst: bool = False) -> bool:
        """Deliver until stopped (or, with ``burst``, until nothing is left); True when every
        sink delivered everything it could read."""
        for loop in self.loops:
            loop.feed.ensure_group()
        beat = threading.Thread(target=self._heartbeat, name="sink-lease", daemon=True)
        beat.start()
        try:
            while not self.stop.is_set():
                worked = False
                for loop in self.loops:
                    if not loop.finished:
                        worked |= self.step(loop, burst)
                if burst and all(loop.finished for loop in self.loops):
                    break
                if not worked:
                    self.stop.wait(self._pause())
        finally:
            self.stop.set()
            self.close()
        return all(loop.complete for loop in self.loops)

    def _heartbeat(self) -> None:
        """Keep the leases while this process lives, however slow a target is; a lease lapses
        only when the process is gone (or frozen for ``SINK_LEASE_SECONDS``)."""
        seconds = self.settings.sink_lease_seconds
        while not self.stop.wait(seconds / 3):
            for loop in self.loops:
                if loop.holding:
                    try:
                        loop.holding = loop.feed.renew(seconds)
                    except redis.RedisError:
                        loop.holding = False

    def _pause(self) -> float:
        now = time.monotonic()
        waits = [loop.retry_at - now for loop in self.loops if loop.retry_at > now]
        return max(0.01, min([IDLE_PAUSE, *waits]))

    def step(self, loop: Loop, burst: bool) -> bool:
        """One batch for one sink; True when something was delivered."""
        if time.monotonic() < loop.retry_at:
            return False
        try:
            if not self._hold(loop):
                loop.finished = burst
                loop.complete = loop.complete and not burst
                return False
            entries = loop.feed.read(min(loop.sink.max_batch, self.settings.sink_batch_size))
            if not entries:
                loop.finished = burst
                return False
            outcome = self.deliver(loop.sink, entries)
            if not self._hold(loop):  # lost the lease meanwhile: the new holder redelivers
                return False
            loop.feed.done(entries, outcome.rejected)
        except Transient as exc:
            self._failed(loop, str(exc), exc.retry_after, burst)
            return False
        except redis.RedisError as exc:
            self._failed(loop, f"Redis: {exc.__class__.__name__}", None, burst, note=False)
            return False
        loop.failures, loop.delivered = 0, loop.delivered + len(entries)
        if outcome.rejected:
            log.warning("%s: parked %d versions", loop.sink.name, len(outcome.rejected))
        return True

    def _hold(self, loop: Loop) -> bool:
        held = loop.feed.acquire(self.settings.sink_lease_seconds)
        if held and not loop.holding:
            taken = loop.feed.take_over()
            log.info("%s: delivering (took over %d pending versions)", loop.sink.name, taken)
        loop.holding = held
        return held

    def deliver(self, sink: Sink, entries: list[Entry]) -> Outcome:
        """The sink's outcome for the entries; a malformed entry, or one that makes the sink
        fail in an unexpected way even alone, is rejected (parked) with the error."""
        outcome, versions = Outcome(), []
        for entry in entries:
            try:
                versions.append(Version(entry.entry_id, json.loads(entry.body)))
            except ValueError as exc:
                outcome.rejected[entry.entry_id] = f"not a record: {exc}"
        try:
            outcome.rejected.update(sink.deliver(versions).rejected)
            return outcome
        except (Transient, redis.RedisError):
            raise
        except Exception as exc:  # a bug or a record the code cannot handle
            if len(versions) == 1:
                log.exception("%s: version %s failed", sink.name, versions[0].key)
                outcome.reject(versions[0], f"error: {exc.__class__.__name__}: {exc}")
                return outcome
        for version in versions:  # find the version that fails
            one = self.deliver(sink, [Entry(version.entry_id, json.dumps(version.record), "")])
            outcome.rejected.update(one.rejected)
        return outcome

    def _failed(
        self, loop: Loop, error: str, retry_after: float | None, burst: bool, note: bool = True
    ) -> None:
        loop.failures += 1
        cap = self.settings.sink_max_backoff_seconds
        pause = min(cap, 2.0 ** (loop.failures - 1)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            pause = min(cap, max(pause, retry_after))
        loop.retry_at = time.monotonic() + pause
        name = loop.sink.name
        log.warning("%s: %s (attempt %d; next in %.1fs)", name, error, loop.failures, pause)
        if note:
            with contextlib.suppress(redis.RedisError):
                loop.feed.failed(error, time.time() + pause)
        if burst and loop.failures >= BURST_ATTEMPTS:
            loop.finished, loop.complete = True, False

    def close(self) -> None:
        for loop in self.loops:
            try:
                if loop.holding:
                    loop.feed.release()
            except redis.RedisError:
                pass
            loop.sink.close()


def run_sinks(ctx: Context, sinks: list[Sink], burst: bool = False) -> bool:
    runner = Runner(ctx, sinks)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop.set())
    return runner.run(burst)

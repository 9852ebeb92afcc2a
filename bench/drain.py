"""Drain: status events per second from a pre-filled inbox to records, with N workers.

The inbox is filled directly (pipelined XADD, as ``processor/replay.py`` does), N processor
workers are started (``python -m bench.worker``: ``wa-billing worker`` with its Redis calls
counted) and left to register; then the clock starts, N drain jobs are queued (one per worker,
as the web endpoint and the jobs themselves queue them), and it stops when every body is
acknowledged (consumer-group lag and pending both 0). Worker start-up is not timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rq import Worker
from rq.registry import StartedJobRegistry

from bench.check import CheckResult, check
from bench.env import (
    Bench,
    commandstats,
    cpu_sample,
    cpu_usage,
    stats_delta,
    stop,
    sum_counts,
    wait_for,
)
from bench.traffic import Traffic
from processor.context import Context
from processor.store.inbox import BODY

PUSH_BATCH = 500
POLL = 0.01


@dataclass
class DrainRun:
    workers: int
    status_batch: int
    bodies: int
    statuses: int
    events: int
    seconds: float
    check: CheckResult
    server: dict[str, dict[str, float]]  # INFO commandstats delta over the run
    client: dict[str, int]  # summed counters of the workers (bench.worker)
    cpu: dict[str, float]  # average cores used during the run, by whom
    conflicts: int  # apply calls refused for a stale pair version (decided again)
    shards: int = 1  # the workers' INBOX_SHARDS

    @property
    def status_rate(self) -> float:
        return self.statuses / self.seconds

    @property
    def event_rate(self) -> float:
        return self.events / self.seconds


def fill(ctx: Context, bodies: list[bytes]) -> None:
    ctx.inbox.ensure_group()
    pipe = ctx.redis.pipeline(transaction=False)
    for body in bodies:
        pipe.xadd(ctx.inbox.stream(ctx.inbox.route(body)), {BODY: body})  # as the webhook
        if len(pipe) >= PUSH_BATCH:
            pipe.execute()
    pipe.execute()


def run(
    bench: Bench,
    traffic: Traffic,
    workers: int,
    profile: str | None = None,
    env: dict[str, str] | None = None,
    ledger_pids: list[int] | None = None,
) -> DrainRun:
    """One measured drain of ``traffic`` by ``workers`` processes, then the correctness check.
    The database is left as the run left it (for memory sampling); the caller flushes.
    ``env``: extra settings for the workers and the check (the cluster section puts the ledger
    on a cluster, which the caller flushes; ``ledger_pids``: its nodes, for the CPU split)."""
    bench.flush()
    ctx = bench.context(**(env or {}))
    fill(ctx, traffic.bodies)
    procs, count_files = _start_workers(bench, workers, profile, env or {})
    try:
        wait_for(lambda: Worker.count(queue=ctx.queue) >= workers, 60, "workers to register")
        pids = [p.pid for p in procs]
        before = commandstats(ctx.redis)
        cpu_before = cpu_sample(ctx.redis, pids, ledger=ledger_pids)
        start = time.perf_counter()
        for _ in range(workers):
            ctx.enqueue_drain()
        _wait_drained(ctx, timeout=600)
        seconds = time.perf_counter() - start
        cpu = cpu_usage(cpu_before, cpu_sample(ctx.redis, pids, ledger=ledger_pids))
        wait_for(lambda: _jobs_done(ctx), 60, "drain jobs to finish")
        server = stats_delta(before, commandstats(ctx.redis))
    finally:
        stop(procs)
    result = DrainRun(
        workers=workers,
        status_batch=traffic.status_batch,
        bodies=len(traffic.bodies),
        statuses=traffic.statuses,
        events=traffic.events,
        seconds=seconds,
        check=check(ctx, traffic.expected),
        server=server,
        client=sum_counts(count_files),
        cpu=cpu,
        conflicts=int(ctx.redis.hget(ctx.keys.stats, "apply_conflicts") or 0),
        shards=ctx.settings.inbox_shards,
    )
    ctx.close()
    return result


def _start_workers(
    bench: Bench, n: int, profile: str | None, env: dict[str, str]
) -> tuple[list[Any], list[str]]:
    procs, files = [], []
    for i in range(n):
        counts = str(bench.scratch / f"counts-{time.monotonic_ns()}-{i}.json")
        extra = {**env, "BENCH_COUNTS": counts, "JANITOR_INTERVAL_SECONDS": "3600"}
        if profile and i == 0:
            extra["BENCH_PROFILE"] = profile
        procs.append(bench.spawn(["-m", "bench.worker"], f"worker-{i}", **extra))
        files.append(counts)
    return procs, files


def _wait_drained(ctx: Context, timeout: float) -> None:
    inbox, deadline = ctx.inbox, time.monotonic() + timeout
    while True:
        backlog = inbox.backlog()
        if backlog["lag"] == 0 and backlog["pending"] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"inbox not drained after {timeout:.0f} s: {backlog}")
        time.sleep(POLL)


def _jobs_done(ctx: Context) -> bool:
    started = StartedJobRegistry(queue=ctx.queue)
    return ctx.queue.count == 0 and started.count == 0

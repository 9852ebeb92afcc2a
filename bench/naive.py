"""The naive design, for comparison: one RQ job per event, run by RQ's default forking worker.

Each webhook body is split into one job per status or inbound message (what an endpoint that
enqueues per event would queue); each job parses its one-event body and applies it through the
same :class:`~processor.store.ledger.Ledger` (``ledger.apply([event])``). The worker processes
(``python -m bench.naive``) build the processor's context before they start working, so that
every forked work-horse inherits a warm context (rate book loaded, modules imported): the
comparison measures the per-job design, not start-up costs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from rq import Queue, Worker
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from bench.check import CheckResult, check
from bench.env import Bench, cpu_sample, cpu_usage, stop, wait_for
from bench.traffic import Traffic
from processor.core.parse import parse_body

NAIVE_QUEUE = "bench-naive"
ENQUEUE_BATCH = 500
JOB = "bench.naive.apply_one"


@dataclass
class NaiveRun:
    workers: int
    jobs: int
    statuses: int
    seconds: float
    failed_jobs: int
    check: CheckResult
    cpu: dict[str, float]

    @property
    def event_rate(self) -> float:
        return self.jobs / self.seconds


def apply_one(body: bytes) -> int:
    """The naive job: parse one event's body and apply it; return how many events applied."""
    from workers.drain import context

    ctx = context()
    events = list(parse_body(body, ctx.settings.max_json_depth).events)
    return ctx.ledger.apply(events).applied


def split(bodies: list[bytes]) -> list[bytes]:
    """One body per status or message, in the order they came (redeliveries included)."""
    out = []
    for raw in bodies:
        doc = json.loads(raw)
        for entry in doc["entry"]:
            for change in entry["changes"]:
                out.extend(_singles(doc, entry, change))
    return out


def _singles(doc: dict[str, Any], entry: dict[str, Any], change: dict[str, Any]) -> list[bytes]:
    value = change["value"]
    out = []
    for key, other in (("statuses", "messages"), ("messages", "statuses")):
        for item in value.get(key, ()):
            single = {k: v for k, v in value.items() if k != other} | {key: [item]}
            body = {**doc, "entry": [{**entry, "changes": [{**change, "value": single}]}]}
            out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def run(bench: Bench, traffic: Traffic, workers: int) -> NaiveRun:
    bench.flush()
    ctx = bench.context()
    queue = Queue(NAIVE_QUEUE, connection=ctx.redis)
    jobs = split(traffic.bodies)
    procs = [bench.spawn(["-m", "bench.naive"], f"naive-{i}") for i in range(workers)]
    try:
        wait_for(lambda: Worker.count(queue=queue) >= workers, 60, "naive workers to register")
        pids = [p.pid for p in procs]
        cpu_before = cpu_sample(ctx.redis, pids)
        start = time.perf_counter()
        _enqueue(queue, jobs)
        done = wait_for(lambda: _finished(queue, len(jobs)), 900, "naive jobs", every=0.02)
        seconds = time.perf_counter() - start
        cpu = cpu_usage(cpu_before, cpu_sample(ctx.redis, pids))
    finally:
        stop(procs)
    result = NaiveRun(
        workers=workers,
        jobs=len(jobs),
        statuses=traffic.statuses,
        seconds=seconds,
        failed_jobs=done - 1,
        check=check(ctx, traffic.expected),
        cpu=cpu,
    )
    ctx.close()
    return result


def _enqueue(queue: Queue, jobs: list[bytes]) -> None:
    for i in range(0, len(jobs), ENQUEUE_BATCH):
        with queue.connection.pipeline() as pipe:
            specs = [
                Queue.prepare_data(JOB, args=(body,), result_ttl=3600, failure_ttl=3600)
                for body in jobs[i : i + ENQUEUE_BATCH]
            ]
            queue.enqueue_many(specs, pipeline=pipe)
            pipe.execute()


def _finished(queue: Queue, total: int) -> int:
    """1 + failed jobs once every job finished or failed; 0 before."""
    finished = FinishedJobRegistry(queue=queue).count
    failed = FailedJobRegistry(queue=queue).count
    return 1 + failed if finished + failed >= total else 0


def main() -> None:
    """A default (forking) RQ worker on the naive queue, with a warm processor context."""
    from workers.drain import context

    ctx = context()
    ctx.ledger.sha = ctx.redis.script_load(ctx.ledger.source)  # inherited by every fork
    queue = Queue(NAIVE_QUEUE, connection=ctx.redis)
    Worker([queue], connection=ctx.redis).work(logging_level=os.environ.get("LOG_LEVEL", "INFO"))


if __name__ == "__main__":
    main()

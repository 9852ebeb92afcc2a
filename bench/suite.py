"""The sections of the benchmark, their sizes, and the rows they print."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from bench import ceiling, cluster, drain, ingest, memory, naive, rows
from bench.check import CheckResult
from bench.env import Bench, code_digest, exclusive, load_average, machine
from bench.report import Row
from bench.traffic import Traffic, generate

SECTIONS = ("drain", "cluster", "naive", "ceiling", "ingest")


@dataclass(frozen=True)
class Sizes:
    drain50_messages: int  # outbound messages of the 50-status traffic
    drain1_messages: int  # ... of the 1-status traffic
    naive_messages: int
    bare_calls: int
    saturation_seconds: float
    web_configs: tuple[ingest.WebConfig, ...]
    fixed_seconds: float
    fixed_rate: float = 1_000.0
    concurrency: int = 32


FULL = Sizes(
    drain50_messages=20_000,
    drain1_messages=8_000,
    naive_messages=200,
    bare_calls=100_000,
    saturation_seconds=3.0,
    web_configs=(ingest.WebConfig(2), ingest.WebConfig(4), ingest.WebConfig(2, 4)),
    fixed_seconds=5.0,
)
QUICK = Sizes(
    drain50_messages=1_500,
    drain1_messages=500,
    naive_messages=30,
    bare_calls=10_000,
    saturation_seconds=1.0,
    web_configs=(ingest.WebConfig(2),),
    fixed_seconds=1.0,
)
TINY = Sizes(  # the smoke test: every section, tiny
    drain50_messages=300,
    drain1_messages=100,
    naive_messages=10,
    bare_calls=1_000,
    saturation_seconds=0.5,
    web_configs=(ingest.WebConfig(2),),
    fixed_seconds=0.5,
)


@dataclass
class Suite:
    bench: Bench
    sizes: Sizes
    profile: str | None = None
    repeat: int = 1
    cluster_replicas: int = 0  # replicas per primary of the cluster section's ledger
    log: Any = print
    rows: list[Row] = field(default_factory=list)
    checks: list[tuple[str, CheckResult]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    _traffic: dict[int, Traffic] = field(default_factory=dict)
    _spread: tuple[int, int] = (0, 0)  # the cluster section's (portfolios, primaries used)

    # -- running ---------------------------------------------------------------------------------

    def run(self, sections: tuple[str, ...] = SECTIONS) -> None:
        with exclusive(self.bench.redis_url, self.log):
            self._run(sections)

    def _run(self, sections: tuple[str, ...]) -> None:
        client = redis.Redis.from_url(self.bench.redis_url)
        self.data["machine"] = {**machine(client), "load_start": load_average()}
        client.close()
        for name in SECTIONS:
            if name in sections:
                started = time.perf_counter()
                self.log(f"[bench] {name} ...")
                getattr(self, f"_{name}")()
                self.log(f"[bench] {name} done in {time.perf_counter() - started:.1f} s")
        self.bench.flush()
        self.data["load_end"] = load_average()
        self.data["code_end"] = code_digest()

    @property
    def ok(self) -> bool:
        return all(result.ok for _, result in self.checks)

    def traffic(self, batch: int) -> Traffic:
        if batch not in self._traffic:
            messages = self.sizes.drain50_messages if batch == 50 else self.sizes.drain1_messages
            self._traffic[batch] = generate(messages, batch)
        return self._traffic[batch]

    def _checked(self, name: str, result: CheckResult) -> None:
        self.checks.append((name, result))
        self.log(f"[bench]   check {name}: {result.summary()}")

    # -- drain -----------------------------------------------------------------------------------

    def _drain(self) -> None:
        runs = self._best_runs(self._drain_once)
        if self.profile:  # an extra run, not counted: the profiler slows its worker down
            self._drain_once(self.traffic(50), 50, 2, -1)
        self.data["drain"] = runs
        self.rows += rows.drain_rows(runs) + rows.redis_rows(runs[(50, 2)])
        self.rows += rows.memory_rows(self.data["memory"])

    def _best_runs(
        self, once: Callable[[Traffic, int, int, int], drain.DrainRun]
    ) -> dict[tuple[int, int], drain.DrainRun]:
        """50- and 1-status bodies, 1 and 2 workers: the fastest of ``repeat`` runs of each."""
        runs: dict[tuple[int, int], drain.DrainRun] = {}
        for batch in (50, 1):
            traffic = self.traffic(batch)
            for workers in (1, 2):
                for attempt in range(self.repeat):  # best of N: the machine may be shared
                    run = once(traffic, batch, workers, attempt)
                    best = runs.get((batch, workers))
                    if best is None or run.status_rate > best.status_rate:
                        runs[(batch, workers)] = run
        return runs

    def _drain_once(
        self, traffic: Traffic, batch: int, workers: int, attempt: int
    ) -> drain.DrainRun:
        profile = self.profile if attempt < 0 else None
        run = drain.run(self.bench, traffic, workers, profile)
        self._checked(f"drain {batch}-status x{workers}", run.check)
        extra = " (profiled, not counted)" if attempt < 0 else ""
        self.log(
            f"[bench]   {batch}-status bodies, {workers} worker(s){extra}: "
            f"{run.status_rate:,.0f} status events/s ({run.seconds:.2f} s, "
            f"other users {run.cpu['other_cores']:.2f} cores)"
        )
        if (batch, workers, attempt) == (50, 2, 0):
            ctx = self.bench.context()
            self.data["memory"] = memory.measure(ctx, traffic.messages)
            ctx.close()
        self.bench.flush()
        return run

    # -- cluster ---------------------------------------------------------------------------------

    def _cluster(self) -> None:
        """The drain section's runs again, the ledger on a local cluster (RQ, inbox stay)."""
        missing = cluster.missing_tools()
        if missing:
            self.rows.append(rows.cluster_skipped(missing))
            return
        root = self.bench.scratch / "cluster"
        with cluster.started(root, self.cluster_replicas) as nodes:
            self.log(f"[bench]   {nodes.label} started ({nodes.url})")
            self.data["cluster_pids"] = nodes.pids
            runs = self._best_runs(functools.partial(self._cluster_once, nodes))
            label = nodes.label
        self.data["cluster"] = runs
        self.data["cluster_spread"] = self._spread
        self.rows += rows.cluster_rows(runs, self.data.get("drain", {}), label, self._spread)

    def _cluster_once(
        self, nodes: cluster.Cluster, traffic: Traffic, batch: int, workers: int, _: int
    ) -> drain.DrainRun:
        nodes.flush()
        run = drain.run(self.bench, traffic, workers, env=nodes.env(), ledger_pids=nodes.pids)
        self._checked(f"cluster {batch}-status x{workers}", run.check)
        ctx = self.bench.context(**nodes.env())
        self._spread = cluster.spread(ctx)
        ctx.close()
        self.log(
            f"[bench]   {batch}-status bodies, {workers} worker(s), ledger on the cluster: "
            f"{run.status_rate:,.0f} status events/s ({run.seconds:.2f} s, "
            f"other users {run.cpu['other_cores']:.2f} cores)"
        )
        self.bench.flush()
        nodes.flush()
        return run

    # -- naive -----------------------------------------------------------------------------------

    def _naive(self) -> None:
        traffic = generate(self.sizes.naive_messages, 50, seed=2)
        run = naive.run(self.bench, traffic, 2)
        self._checked("naive x2", run.check)
        self.data["naive"] = run
        self.rows += rows.naive_rows(run, self.data.get("drain", {}))
        self.bench.flush()

    # -- ceiling ---------------------------------------------------------------------------------

    def _ceiling(self) -> None:
        traffic = self.traffic(50)
        result = ceiling.run(self.bench, traffic, self.sizes.bare_calls)
        self._checked("apply.lua driven directly", result.check)
        self.data["ceiling"] = result
        self.rows += rows.ceiling_rows(result, self.data.get("drain", {}))
        self.bench.flush()

    # -- ingest ----------------------------------------------------------------------------------

    def _ingest(self) -> None:
        sizes = self.sizes
        posts = int(sizes.fixed_rate * sizes.fixed_seconds)
        bodies = generate(max(50, posts // 2), 1, seed=3).bodies
        saturations = [self._saturate(c, bodies, 0) for c in sizes.web_configs]
        best = max(saturations, key=lambda s: s.rate)
        config = next(c for c in sizes.web_configs if c.label == best.config)
        self.rows += [rows.saturation_row(s, s is best) for s in saturations]
        with_workers = self._saturate(config, bodies, 2)
        self.rows.append(rows.saturation_row(with_workers, False))
        fixed = []
        for workers in (2, 1, 0):
            runs = []
            for _ in range(self.repeat):
                run = ingest.fixed_rate(
                    self.bench, config, bodies[:posts], sizes.fixed_rate, workers
                )
                if run.check is not None:
                    self._checked(f"ingest at fixed rate, {workers} draining", run.check)
                self.log(
                    f"[bench]   {sizes.fixed_rate:,.0f}/s offered, {workers} draining: p50 "
                    f"{run.percentile(50) * 1e3:.1f} ms, p99 {run.percentile(99) * 1e3:.1f} ms, "
                    f"{run.errors} errors (other users {run.cpu['other_cores']:.2f} cores)"
                )
                runs.append(run)
            run = min(runs, key=lambda r: (r.errors > 0, r.percentile(99)))
            self.rows += rows.fixed_rows(run, headline=workers == 2)
            fixed.append(run)
        self.data["ingest"] = {"saturation": [*saturations, with_workers], "fixed": fixed}
        self.bench.flush()

    def _saturate(
        self, config: ingest.WebConfig, bodies: list[bytes], workers: int
    ) -> ingest.Saturation:
        sizes = self.sizes
        runs = []
        for _ in range(self.repeat):
            run = ingest.saturation(
                self.bench, config, bodies, sizes.saturation_seconds, sizes.concurrency, workers
            )
            self.log(
                f"[bench]   saturation, gunicorn {config.label}, {workers} draining: "
                f"{run.rate:,.0f} POSTs/s (other users {run.cpu['other_cores']:.2f} cores)"
            )
            runs.append(run)
        return max(runs, key=lambda r: r.rate)

    # -- summary ---------------------------------------------------------------------------------

    def check_row(self) -> Row:
        return rows.check_row(self.checks)

    def cpu_lines(self) -> list[str]:
        return rows.cpu_lines(self.data)

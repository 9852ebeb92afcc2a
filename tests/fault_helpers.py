"""Helpers for the fault tests: Meta-shaped traffic, real processes, bounded waits.

Every wait polls a condition with a deadline; every process started here is stopped by
``stop()`` (SIGTERM, then SIGKILL after a grace period), and its output goes to a log file
whose tail is shown when a wait times out.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import redis

from processor.context import Context, build_context
from processor.settings import load_settings
from processor.store.inbox import BODY
from tests import payloads as p
from workers import drain as drain_module

T = TypeVar("T")
H = 3_600
DAY = 86_400
T_JULY = 1_752_969_600  # 2025-07-20T00:00Z (pmp-2025-07); traffic runs into August
PROJECT = Path(__file__).resolve().parent.parent


# -- waiting -------------------------------------------------------------------------------------


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str,
    every: float = 0.05,
    logs: list[Path] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tails(logs)}")
        time.sleep(every)


def tails(logs: list[Path] | None, lines: int = 40) -> str:
    out = []
    for path in logs or []:
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path.name} (last {lines} lines) ---\n" + "\n".join(text))
    return "".join(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Processes:
    """The processes a test started; ``stop_all`` in a ``finally`` ends every one of them."""

    directory: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> Proc:
        log = self.directory / f"{name}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                [sys.executable, *args],
                env={**os.environ, "PYTHONPATH": str(PROJECT), **env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
            )
        proc = Proc(popen, log, name)
        self.procs.append(proc)
        return proc

    def worker(self, name: str, env: Mapping[str, str], *, fixed_parser: bool = False) -> Proc:
        if not fixed_parser:
            return self.start(name, ["-m", "processor.cli", "worker"], env)
        # The same worker, "after a fix": phone numbers with spaces are accepted.
        code = (
            "import re, sys; from processor.core import parse;"
            " parse._USER = re.compile(r'[0-9 ]{4,20}');"
            " from processor.cli import main; sys.argv = ['wa-billing', 'worker']; main()"
        )
        return self.start(name, ["-c", code], env)

    def web(self, name: str, env: Mapping[str, str], port: int) -> Proc:
        args = ["-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "--timeout", "30"]
        return self.start(name, [*args, "processor.web:create_app()"], env)

    @property
    def logs(self) -> list[Path]:
        return [proc.log for proc in self.procs]

    def stop(self, proc: Proc, grace: float = 10.0) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            self.stop(proc)


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m processor.cli ARGS`` in a subprocess; it must succeed within ``timeout``."""
    result = subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env={**os.environ, "PYTHONPATH": str(PROJECT), **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


# -- contexts ------------------------------------------------------------------------------------


@contextlib.contextmanager
def other_context(environ: Mapping[str, str], **changes: str) -> Iterator[Context]:
    """A context on the same Redis under another prefix and queue; its keys are wiped after."""
    from tests.conftest import _wipe

    env = {**environ, **changes}
    ctx = build_context(load_settings(env))
    try:
        yield ctx
    finally:
        with contextlib.suppress(redis.RedisError):
            ctx.queue.empty()  # the job hashes too (their keys do not carry the queue name)
            _wipe(ctx.redis, ctx.settings)
        ctx.close()


def drain_here(ctx: Context, max_seconds: float = 60.0) -> dict[str, int]:
    """Run drain jobs in this process until the inbox of ``ctx`` is empty."""
    saved = drain_module._context
    drain_module.use_context(ctx)
    try:
        deadline = time.monotonic() + max_seconds
        totals: dict[str, int] = {}
        while sum(ctx.inbox.backlog().values()):
            assert time.monotonic() < deadline, "in-process drain did not finish"
            for k, v in drain_module.drain(max_seconds).items():
                totals[k] = totals.get(k, 0) + v
        return totals
    finally:
        drain_module._context = saved


def push_all(ctx: Context, bodies: list[bytes]) -> None:
    """Store bodies without queueing any job (as if the endpoint's enqueue had failed)."""
    ctx.inbox.ensure_group()
    pipe = ctx.redis.pipeline(transaction=False)
    for body in bodies:
        pipe.xadd(ctx.keys.inbox, {BODY: body})
    pipe.execute()


def store(ctx: Context, body: bytes) -> str:
    """What the endpoint does with a body: store it; queue a drain job if none is coming."""
    entry_id, ticket = ctx.inbox.push(body)
    if ticket:
        ctx.enqueue_drain()
    return entry_id


def reference(environ: Mapping[str, str], bodies: list[bytes]) -> dict[str, Any]:
    """Records and usage of one clean, in-process delivery of ``bodies`` (another prefix)."""
    from tests.ledger_helpers import snapshot

    tag = os.urandom(4).hex()
    with other_context(environ, REDIS_PREFIX=f"ref{tag}", QUEUE_NAME=f"qref{tag}") as ctx:
        push_all(ctx, bodies)
        drain_here(ctx)
        return snapshot(ctx.redis, ctx.settings.redis_prefix)


# -- traffic -------------------------------------------------------------------------------------


def user(n: int) -> str:
    return f"5511{n:09d}"  # Brazil


def message_events(wamid: str, t: int, who: str, kind: str, rng: random.Random) -> list[Any]:
    """The statuses Meta sends for one outbound message of ``kind`` sent at ``t``."""
    if kind == "failed":
        return [p.status(wamid, "sent", t, user=who), p.status(wamid, "failed", t + 4, user=who)]
    category, ptype = {
        "marketing": ("marketing", "regular"),
        "utility": ("utility", "regular"),
        "utility_free": ("utility", "free_customer_service"),
        "service": ("service", "free_customer_service"),
    }[kind]
    priced = {"category": category, "pricing_type": ptype}
    events = [
        p.status(wamid, "sent", t, user=who, **priced),
        p.status(wamid, "delivered", t + rng.randint(1, 30), user=who, **priced),
    ]
    if rng.random() < 0.5:
        events.append(p.status(wamid, "read", t + rng.randint(60, 3 * H), user=who))
    return events


def status_events(
    messages: int, users: int, seed: int, start: int = T_JULY, days: int = 20
) -> list[dict[str, Any]]:
    """Status events of ``messages`` outbound messages to ``users`` users over ``days`` days."""
    rng = random.Random(seed)
    kinds = ["marketing", "utility", "utility", "utility_free", "service", "failed"]
    events: list[dict[str, Any]] = []
    for n in range(messages):
        t = start + rng.randrange(days * DAY)
        who = user(rng.randrange(users))
        events += message_events(f"wamid.s{seed}.{n}", t, who, rng.choice(kinds), rng)
    return events


def arrival(events: list[dict[str, Any]], lateness: int, seed: int) -> list[dict[str, Any]]:
    """Meta's delivery order: event time, each event up to ``lateness`` seconds late.

    (Lateness stays well inside PAIR_HORIZON_DAYS: older late events are quarantined by design.)
    """
    rng = random.Random(seed)
    return sorted(events, key=lambda e: int(e["timestamp"]) + rng.randrange(lateness))


def bodies_of(events: list[dict[str, Any]], per_body: int) -> list[bytes]:
    """The events, in this order, in bodies of ``per_body`` statuses."""
    return [
        p.raw(p.body(p.change(statuses=events[i : i + per_body])))
        for i in range(0, len(events), per_body)
    ]


def one_template(n: int, t: int) -> bytes:
    """A body whose only effect is one charged marketing message (a record per body).

    Its user (Rio de Janeiro numbers) is never one of ``status_events``' users (Sao Paulo).
    """
    who = f"5521{n:09d}"
    priced = {"category": "marketing", "pricing_type": "regular", "user": who}
    return p.raw(
        p.body(
            p.change(
                statuses=[
                    p.status(f"wamid.one.{n}", "sent", t, **priced),
                    p.status(f"wamid.one.{n}", "delivered", t + 2, **priced),
                ]
            )
        )
    )

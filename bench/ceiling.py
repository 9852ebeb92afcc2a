"""The ceiling: how fast Redis runs one atomic apply per event, with no processor around it.

* **bare apply**: a minimal Lua script, ``SET NX EX`` (the claim) + ``HINCRBY`` (a counter) +
  ``XADD MAXLEN ~`` (a record version on a feed), one call per event, pipelined in batches of
  200 from one client. This is the rate the stack notes call the ceiling of "one atomic apply
  per event" on one Redis.
* **real apply.lua**: the processor's own script, driven directly with pre-built arguments:
  the traffic's events are decided in Python first with the ledger's own decision step, batch
  by batch as a drain job groups them (untimed for this figure; the time is reported apart as
  the decide cost), then each batch's calls are sent by the ledger's own sender (one pipeline
  per batch). The records it leaves are checked like a drain's.

Only public functions are used: ``Ledger.plan`` (decide in core + encode, no I/O) and
``Ledger.send``; each pair's state is held as the public
:class:`~processor.core.history.PairHistory` (which ``plan`` updates in place, version
included), so a change of the stored form cannot break the benchmark.
``tests/test_bench_smoke.py`` runs this section in CI.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis

from bench.check import CheckResult, check
from bench.env import Bench, commandstats, stats_delta
from bench.traffic import Traffic
from processor.core.events import Event, Pair
from processor.core.history import PairHistory
from processor.core.parse import parse_body
from processor.store.ledger import ApplyResult, Ledger

BATCH = 200
RECORD_BYTES = 600  # about the size of a record's JSON
BARE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[4])
  return 1
end
return 0
"""


@dataclass
class Ceiling:
    bare_calls: int
    bare_seconds: float
    real_calls: int
    real_events: int  # events the calls claim (one per call, or several of a pair per call)
    real_seconds: float
    parse_seconds: float  # Python: parsing the traffic's bodies into events
    decide_seconds: float  # Python: deciding every event (the ledger's pure part)
    events: int
    check: CheckResult
    real_server: dict[str, dict[str, float]]

    @property
    def bare_rate(self) -> float:
        return self.bare_calls / self.bare_seconds

    @property
    def real_rate(self) -> float:
        """Events applied per second through apply.lua (new events: claims written)."""
        return self.real_events / self.real_seconds

    @property
    def real_call_rate(self) -> float:
        return self.real_calls / self.real_seconds


def bare(client: redis.Redis, calls: int) -> float:
    """Seconds for ``calls`` bare applies (all new claims), pipelined by 200."""
    sha = client.script_load(BARE)
    payload = "x" * RECORD_BYTES
    start = time.perf_counter()
    for first in range(0, calls, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(first, min(calls, first + BATCH)):
            keys = (f"bench:bare:c:{i}", f"bench:bare:usage:{i % 8}", "bench:bare:feed")
            pipe.evalsha(sha, 3, *keys, 691200, f"line{i % 50}", 1_000_000, payload)
        pipe.execute()
    return time.perf_counter() - start


def decide_all(ledger: Ledger, batches: list[list[Event]]) -> list[list[Any]]:
    """The apply calls of each batch of events (as a drain job groups them), decided in order
    with the ledger's own decision step; each pair's history starts empty (the database was
    flushed) and is carried from call to call in memory, as Redis would hold it."""
    result, out = ApplyResult(), []
    histories: dict[Pair, PairHistory] = defaultdict(PairHistory)
    for batch in batches:
        by_pair: dict[Pair, list[Event]] = defaultdict(list)
        for event in batch:
            by_pair[event.pair].append(event)
        calls = []
        for pair, pair_events in by_pair.items():
            # updates the history in place, its version token included
            calls.extend(ledger.plan(pair, histories[pair], pair_events, result))
        out.append(calls)
    return out


def send_all(ledger: Ledger, batches: list[list[Any]]) -> float:
    """Seconds to run the calls through apply.lua with the ledger's own sender (one pipeline
    per drain batch, and whatever upkeep the ledger adds to it)."""
    result = ApplyResult()
    start = time.perf_counter()
    for calls in batches:
        retry = ledger.send(calls, result)
        if retry:
            raise RuntimeError(f"apply.lua refused {len(retry)} pre-decided events")
    return time.perf_counter() - start


def run(bench: Bench, traffic: Traffic, bare_calls: int) -> Ceiling:
    bench.flush()
    ctx = bench.context()
    bare_seconds = bare(ctx.redis, bare_calls)
    bench.flush()
    batch = ctx.settings.drain_batch_bodies
    start = time.perf_counter()
    batches = [
        [e for body in traffic.bodies[i : i + batch] for e in parse_body(body).events]
        for i in range(0, len(traffic.bodies), batch)
    ]
    parse_seconds = time.perf_counter() - start
    events = [e for b in batches for e in b]
    start = time.perf_counter()
    decided = decide_all(ctx.ledger, batches)
    decide_seconds = time.perf_counter() - start
    calls = [c for b in decided for c in b]
    ctx.ledger.sha = ctx.redis.script_load(ctx.ledger.source)
    before = commandstats(ctx.redis)
    real_seconds = send_all(ctx.ledger, decided)
    server = stats_delta(before, commandstats(ctx.redis))
    result = Ceiling(
        bare_calls=bare_calls,
        bare_seconds=bare_seconds,
        real_calls=len(calls),
        real_events=sum(len(c.events) for c in calls),
        real_seconds=real_seconds,
        parse_seconds=parse_seconds,
        decide_seconds=decide_seconds,
        events=len(events),
        check=check(ctx, traffic.expected),
        real_server=server,
    )
    ctx.close()
    return result

"""Every section of the benchmark end to end, tiny: real workers, real Redis, records checked.

Only correctness is asserted (each run's records equal what the generated traffic must
produce, and every section prints its rows), never a speed: the benchmark calls into the
processor (the ceiling section even drives the ledger's decision step and apply.lua
directly), so a change there that breaks ``python -m bench`` must fail CI, not the next person
who runs it. The benchmark flushes its database, so it runs on a database of its own (12) of
the test Redis server, never the one the other tests share. The cluster section starts a real
local Redis Cluster (``redis-server``, ``redis-cli``) for its ledger, as ``python -m bench``
does.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench import cluster
from bench.env import make_bench
from bench.suite import SECTIONS, TINY, Suite
from tests.needs import need

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
BENCH_DB = 12


def own_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_bench_section_runs_and_produces_exactly_the_expected_records(
    redis_url: str,
) -> None:
    """drain (1 and 2 workers, 50- and 1-status bodies), cluster (the same runs, the ledger on
    a local 3-primary cluster), naive, ceiling (apply.lua driven directly) and ingest
    (gunicorn, signed POSTs) each run whole at a tiny size and leave exactly the records the
    generated traffic should produce; the cluster is gone afterwards."""
    need(not cluster.missing_tools(), "redis-server and redis-cli for the cluster section")
    assert SECTIONS == ("drain", "cluster", "naive", "ceiling", "ingest")  # a new one: add it
    bench = make_bench(own_database(redis_url))
    suite = Suite(bench, TINY, log=lambda *_: None)
    try:
        suite.run(SECTIONS)
    finally:
        bench.cleanup()
    assert [name for name, _ in suite.checks] == [
        "drain 50-status x1",
        "drain 50-status x2",
        "drain 1-status x1",
        "drain 1-status x2",
        "cluster 50-status x1",
        "cluster 50-status x2",
        "cluster 1-status x1",
        "cluster 1-status x2",
        "naive x2",
        "apply.lua driven directly",
        "ingest at fixed rate, 2 draining",
        "ingest at fixed rate, 1 draining",
    ]
    assert suite.ok, [result.summary() for _, result in suite.checks if not result.ok]
    assert all(result.records == result.expected > 0 for _, result in suite.checks)
    assert {row.section for row in suite.rows} == {
        "drain", "cluster", "redis", "memory", "naive", "ceiling", "ingest"
    }  # fmt: skip
    ceiling = suite.data["ceiling"]
    assert 0 < ceiling.real_events <= ceiling.events
    ratios = [r for r in suite.rows if r.measure.endswith("cluster / single-node drain")]
    assert len(ratios) == 4 and all(r.figure for r in ratios)
    assert suite.data["cluster_spread"][0] == 3  # the traffic's three WABAs, one tag each
    pids = suite.data["cluster_pids"]
    assert len(pids) == cluster.PRIMARIES and not any(alive(p) for p in pids)


def test_bench_cluster_section_stops_its_cluster_when_a_run_is_interrupted(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of the cluster section: the nodes are stopped, their directory
    removed, and the interruption goes on up (the bench does not swallow it)."""
    need(not cluster.missing_tools(), "redis-server and redis-cli for the cluster section")

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.suite.drain.run", interrupted)
    bench = make_bench(own_database(redis_url))
    suite = Suite(bench, TINY, log=lambda *_: None)
    try:
        with pytest.raises(KeyboardInterrupt):
            suite.run(("cluster",))
        assert not (bench.scratch / "cluster").exists()
    finally:
        bench.cleanup()
    pids = suite.data["cluster_pids"]
    assert len(pids) == cluster.PRIMARIES and not any(alive(p) for p in pids)


def test_bench_cluster_section_without_redis_tools_says_so_in_a_row(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No redis-server/redis-cli on PATH: the section prints why it was skipped, nothing
    fails."""
    monkeypatch.setattr("bench.suite.cluster.missing_tools", lambda: ["redis-cli"])
    bench = make_bench(own_database(redis_url))
    suite = Suite(bench, TINY, log=lambda *_: None)
    try:
        suite.run(("cluster",))
    finally:
        bench.cleanup()
    assert suite.ok and not suite.checks
    [row] = suite.rows
    assert row.section == "cluster" and "skipped: redis-cli not found" in row.measure

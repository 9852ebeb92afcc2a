"""Every section of the benchmark end to end, tiny: real workers, real Redis, records checked.

Only correctness is asserted (each run's records equal what the generated traffic must
produce, and every section prints its rows), never a speed: the benchmark calls into the
processor (the ceiling section even drives the ledger's decision step and apply.lua
directly), so a change there that breaks ``python -m bench`` must fail CI, not the next person
who runs it. The benchmark flushes its database, so it runs on a database of its own (12) of
the test Redis server, never the one the other tests share.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from bench.env import make_bench
from bench.suite import SECTIONS, TINY, Suite

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
BENCH_DB = 12


def own_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def test_every_bench_section_runs_and_produces_exactly_the_expected_records(
    redis_url: str,
) -> None:
    """drain (1 and 2 workers, 50- and 1-status bodies), naive, ceiling (apply.lua driven
    directly) and ingest (gunicorn, signed POSTs) each run whole at a tiny size and leave
    exactly the records the generated traffic should produce."""
    assert SECTIONS == ("drain", "naive", "ceiling", "ingest")  # a new section: add it here
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
        "naive x2",
        "apply.lua driven directly",
        "ingest at fixed rate, 2 draining",
        "ingest at fixed rate, 1 draining",
    ]
    assert suite.ok, [result.summary() for _, result in suite.checks if not result.ok]
    assert all(result.records == result.expected > 0 for _, result in suite.checks)
    assert {row.section for row in suite.rows} == {
        "drain", "redis", "memory", "naive", "ceiling", "ingest"
    }  # fmt: skip
    ceiling = suite.data["ceiling"]
    assert 0 < ceiling.real_events <= ceiling.events

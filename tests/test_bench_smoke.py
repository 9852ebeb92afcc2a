"""The benchmark's drain section end to end, tiny: real workers, real Redis, records checked.

Only correctness is asserted (the records equal what the generated traffic must produce), never
a speed. The benchmark flushes its database, so it runs on a database of its own (12) of the
test Redis server, never the one the other tests share.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from bench.env import make_bench
from bench.suite import TINY, Suite

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
BENCH_DB = 12


def own_database(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def test_drain_section_produces_exactly_the_expected_records(redis_url: str) -> None:
    """Every drain run (1 and 2 workers, 50- and 1-status bodies) leaves exactly the records
    the generated traffic should produce, with memory and Redis figures measured."""
    bench = make_bench(own_database(redis_url))
    suite = Suite(bench, TINY, log=lambda *_: None)
    try:
        suite.run(("drain",))
    finally:
        bench.cleanup()
    assert [name for name, _ in suite.checks] == [
        "drain 50-status x1",
        "drain 50-status x2",
        "drain 1-status x1",
        "drain 1-status x2",
    ]
    assert suite.ok, [result.summary() for _, result in suite.checks if not result.ok]
    assert all(result.records == result.expected > 0 for _, result in suite.checks)
    assert {row.section for row in suite.rows} == {"drain", "redis", "memory"}

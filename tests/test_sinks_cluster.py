"""Sinks on a ledger on a real Redis Cluster: one feed per portfolio (hash tag), each read with
the sink's own consumer group; every version delivered once, status summed over the feeds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from processor.context import Context, build_context
from processor.core.events import Pair, Pricing, Status
from processor.settings import load_settings
from processor.sinks.base import Outcome, Sink, Version
from processor.sinks.runner import Runner
from processor.sinks.status import status_of
from processor.store.queries import Queries
from tests.cluster import LocalCluster
from tests.conftest import _wipe
from tests.ledger_helpers import write_config

pytestmark = pytest.mark.cluster
T = 1_790_812_800 + 3 * 86_400  # 2026-10-04


class Recorder(Sink):
    name = "webhook"
    max_batch = 2

    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        self.got += [v.key for v in versions]
        return Outcome()


@pytest.fixture
def cluster_ctx(
    environ: dict[str, str], redis_cluster: LocalCluster, tmp_path: Path
) -> Iterator[Context]:
    config = write_config(tmp_path / "config")
    (config / "wabas.csv").write_text(
        "waba_id,currency,timezone,portfolio_id\nw-1,USD,UTC,P1\nw-2,USD,UTC,P1\nw-3,USD,UTC,P2\n"
    )
    env = {**environ, "LEDGER_REDIS_URL": redis_cluster.url, "LEDGER_REDIS_CLUSTER": "true",
           "BILLING_CONFIG_DIR": str(config), "SINKS": "webhook",
           "SINK_WEBHOOK_URL": "http://127.0.0.1:9/unused",
           "SINK_WEBHOOK_SECRET": "s" * 32}  # fmt: skip
    settings = load_settings(env)
    context = build_context(settings)
    yield context
    ledger = context.ledger_redis
    for key in list(ledger.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)):
        ledger.delete(key)
    _wipe(context.redis, settings)
    context.close()


def _delivered(waba: str, n: int, t: int) -> Status:
    pair = Pair(waba, f"phone-{waba}", f"55119000000{n:02d}")
    return Status(pair, f"wamid.{n}", "delivered", t, None, Pricing(True, "PMP", "marketing"))


def test_sinks_read_every_portfolio_feed_of_a_cluster_ledger_once(cluster_ctx: Context) -> None:
    ctx = cluster_ctx
    events = [_delivered(w, n, T + n) for n, w in enumerate(["w-1", "w-3", "w-2", "w-3", "w-1"])]
    assert ctx.ledger.apply(events).records == 5
    feeds = Queries(ctx.ledger_redis, ctx.ledger_keys).feeds()
    assert len(feeds) == 2  # P1 and P2

    sink = Recorder()
    assert Runner(ctx, [sink], "a").run(burst=True)
    assert len(sink.got) == len(set(sink.got)) == 5
    status = status_of(ctx)["webhook"]
    assert (status["lag"], status["pending"], status["missed"]) == (0, 0, 0)
    assert status["delivered"] == 5

    late = [_delivered("w-3", 9, T + 9)]  # a new version later, on one portfolio's feed
    assert ctx.ledger.apply(late).records == 1
    assert status_of(ctx)["webhook"]["lag"] == 1
    again = Recorder()
    assert Runner(ctx, [again], "b").run(burst=True)
    assert len(again.got) == 1  # only the new one: nothing twice
    assert status_of(ctx)["webhook"]["lag"] == 0

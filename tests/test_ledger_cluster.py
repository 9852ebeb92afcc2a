"""The ledger on a real Redis Cluster (3 primaries + 3 replicas, tests/cluster.py).

The same pipeline, race and ledger tests as standalone, with LEDGER_REDIS_URL naming a node of
the cluster and LEDGER_REDIS_CLUSTER=true (RQ, the inbox and the quarantine stay on REDIS_URL);
the keys of one apply call share one slot; the script refuses a key it was not given; the
readers find every tag's months, pending lists and records feed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from processor.config_files import load_ratebook
from processor.context import Context
from processor.core.events import Pair, Pricing, Status
from processor.settings import load_settings
from processor.store.keys import Keys
from processor.store.queries import Queries
from processor.store.rerate import Rerater
from tests.cluster import LocalCluster
from tests.ledger_helpers import keys_for, make_ledger, snapshot
from tests.test_pipeline import (  # noqa: F401  (collected here again, on the cluster)
    test_body_with_many_entries_changes_and_statuses,
    test_discrepancies_are_listed_with_meta_answer_kept,
    test_malformed_event_is_quarantined_beside_good_ones,
    test_read_before_delivered_charges_at_delivery,
    test_records_paginate_and_stream_as_jsonl,
    test_redelivered_body_is_counted_once,
    test_signed_status_becomes_one_record,
)
from tests.test_tiers_across_currencies import (
    INR_WABA,
    USD_WABA,
    expected,
    interleaved,
)
from tests.test_tiers_across_currencies import write_config as write_tier_config

pytestmark = pytest.mark.cluster


@pytest.fixture
def environ(environ: dict[str, str], redis_cluster: LocalCluster) -> dict[str, str]:
    """The conftest environment, with the ledger on the cluster."""
    return {**environ, "LEDGER_REDIS_URL": redis_cluster.url, "LEDGER_REDIS_CLUSTER": "true"}


@pytest.fixture
def cluster_client(redis_cluster: LocalCluster) -> Iterator[redis.Redis]:
    client = RedisCluster.from_url(redis_cluster.url)
    yield client  # type: ignore[misc]
    client.close()


def test_the_ledger_of_a_cluster_context_is_the_cluster_and_rq_stays_standalone(
    ctx: Context,
) -> None:
    assert isinstance(ctx.ledger_redis, RedisCluster)
    assert isinstance(ctx.redis, redis.Redis)
    assert ctx.ledger_keys.cluster and not ctx.keys.cluster
    assert ctx.queue.connection is ctx.redis


def test_settings_refuse_a_cluster_without_a_url() -> None:
    from processor.errors import SettingsError

    with pytest.raises(SettingsError, match="LEDGER_REDIS_CLUSTER"):
        load_settings({"LEDGER_REDIS_CLUSTER": "true"}, web=False)
    alone = load_settings({"REDIS_URL": "redis://127.0.0.1:6379/0"}, web=False)
    assert (alone.ledger_redis_url, alone.ledger_redis_cluster, alone.ledger_wait_replicas) == (
        None, False, 0)  # fmt: skip


def test_every_key_of_a_portfolio_shares_one_slot_and_portfolios_spread() -> None:
    keys = Keys("wab", cluster=True, portfolios={"w1": "P1", "w2": "P1", "w3": "P2"})
    pair = Pair("w1", "phone1", "user1")
    names = [
        keys.pair(pair),
        keys.claim("wamid.x|delivered", "w1"),
        keys.records("w1", "2026-10"),
        keys.usage("w2", "2026-10"),
        keys.bucket("volume_tier", "P1", "India", "utility", "2026-10", waba_id="w2"),
        keys.bounds(keys.bucket("phone_allowance", "phone1", "2026-10", waba_id="w1")),
        keys.pending("w2"),
        keys.feed_of(keys.tag("w1")),
        keys.months_of(keys.tag("w2")),
    ]
    assert len({key_slot(n.encode()) for n in names}) == 1
    assert keys.tag("w3") != keys.tag("w1")
    assert keys.tag("unlisted") == "{unlisted}"  # an unlisted WABA is its own portfolio
    assert Keys("wab").pair(pair) == "wab:pair:phone1:user1"  # standalone names unchanged


def test_a_portfolio_id_with_braces_still_makes_one_tag() -> None:
    keys = Keys("wab", cluster=True, portfolios={"w": "a}b{c"})
    tag = keys.tag("w")
    assert tag.count("{") == 1 and tag.count("}") == 1
    assert key_slot(keys.pair(Pair("w", "p", "u")).encode()) == key_slot(tag.encode())


def test_the_apply_script_refuses_a_key_it_was_not_given(
    cluster_client: redis.Redis, tmp_path: Path
) -> None:
    """A key used but not passed in KEYS is an error, and nothing is written."""
    prefix = "x" + secrets.token_hex(4)
    ledger = make_ledger(cluster_client, prefix, _config(tmp_path))
    event = _delivered("w-1", "phone-1", "5511900000001", 1, 1_790_812_800 + 3 * 86_400)
    real = ledger._data_keys  # the index names the records key; KEYS will lack it

    def without_records(*args: Any) -> tuple[list[str], str]:
        keys, index = real(*args)
        return [k for k in keys if ":rec:" not in k], index

    ledger._data_keys = without_records  # type: ignore[method-assign]
    with pytest.raises(redis.ResponseError, match="not passed in KEYS"):
        ledger.apply([event])
    assert snapshot(cluster_client, prefix) == {"records": {}, "usage": {}}


def test_two_portfolios_land_on_their_own_tags_and_readers_find_both(
    cluster_client: redis.Redis, tmp_path: Path
) -> None:
    prefix = "q" + secrets.token_hex(4)
    config = _config(tmp_path)
    ledger = make_ledger(cluster_client, prefix, config)
    t = 1_790_812_800 + 3 * 86_400
    events = [
        _delivered("w-1", "phone-1", "5511900000001", 1, t),
        _delivered("w-2", "phone-2", "5511900000002", 2, t + 60),
        _delivered("w-3", "phone-3", "5511900000003", 3, t + 120),
    ]
    result = ledger.apply(events)
    assert result.applied == 3 and result.records == 3
    queries = Queries(cluster_client, keys_for(cluster_client, prefix, config))
    assert queries.tags() == ["{P1}", "{P2}"]
    assert queries.months() == [("w-1", "2026-10"), ("w-2", "2026-10"), ("w-3", "2026-10")]
    assert queries.months("w-3") == [("w-3", "2026-10")]
    feeds = queries.feeds()
    assert sum(cluster_client.xlen(f) for f in feeds) == 3
    assert [r["wamid"] for r in queries.records("w-2", "2026-10")] == ["wamid.2"]
    assert queries.usage("w-3", "2026-10", "USD")["units"] == 1
    assert ledger.apply(events).duplicates == 3  # redelivered: nothing twice


def test_pending_messages_of_every_tag_are_listed(
    cluster_client: redis.Redis, tmp_path: Path
) -> None:
    prefix = "pe" + secrets.token_hex(4)
    config = _config(tmp_path)
    ledger = make_ledger(cluster_client, prefix, config)
    t = 1_790_812_800 + 3 * 86_400
    events = [  # delivered without pricing: the category is not known yet
        Status(Pair(w, f"phone-{w}", "5511900000009"), f"wamid.{w}", "delivered", t, None, None)
        for w in ("w-1", "w-3")
    ]
    ledger.apply(events)
    queries = Queries(cluster_client, keys_for(cluster_client, prefix, config))
    assert sorted(x["waba_id"] for x in queries.pending()) == ["w-1", "w-3"]
    assert [x["waba_id"] for x in queries.pending("w-3")] == ["w-3"]


def test_tiers_shared_by_two_wabas_of_a_portfolio_on_the_cluster_and_rerate(
    cluster_client: redis.Redis, tmp_path: Path
) -> None:
    """Every arrival late: each shifts units of both WABAs (records of two WABAs in one
    call); rerate (one transaction per tag, on its node) agrees."""
    prefix = "tc" + secrets.token_hex(4)
    config = write_tier_config(tmp_path / "tiers")
    ledger = make_ledger(cluster_client, prefix, config, limit=1000)
    events = interleaved()
    for event in reversed(events):
        ledger.apply([event])
    keys = keys_for(cluster_client, prefix, config)
    queries = Queries(cluster_client, keys)
    got = {}
    for waba in (USD_WABA, INR_WABA):
        for rec in queries.records(waba, "2025-11"):
            got[rec["wamid"]] = (rec["currency"], _dec(rec["cost"]))
    assert got == expected(events)
    rerater = Rerater(cluster_client, keys, load_ratebook(config), 100)
    assert rerater.rerate("2025-11").changed == 0


def _dec(value: str) -> Any:
    from decimal import Decimal

    return Decimal(value)


def _config(tmp_path: Path) -> Path:
    from tests.ledger_helpers import write_config

    directory = write_config(tmp_path / "config")
    (directory / "wabas.csv").write_text(
        "waba_id,currency,timezone,portfolio_id\nw-1,USD,UTC,P1\nw-2,USD,UTC,P1\nw-3,USD,UTC,P2\n"
    )
    return directory


def _delivered(waba: str, phone: str, user: str, n: int, t: int) -> Status:
    return Status(Pair(waba, phone, user), f"wamid.{n}", "delivered", t, None,
                  Pricing(True, "PMP", "marketing"))  # fmt: skip

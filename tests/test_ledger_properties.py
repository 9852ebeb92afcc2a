"""Invariants of the ledger, through the real Lua apply script.

Run against the in-memory twin (fakeredis running the same script) with many examples, and
against a real Redis with fewer: any arrival order plus redeliveries, in any batching, gives
the same records and usage; usage equals the records it summarizes; no message is charged
twice; an allowance frees exactly its first units in (charge time, wamid) order.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import Conversation, Event, Inbound, Pair, Pricing, Status
from tests.ledger_helpers import (
    PHONE,
    WABA,
    make_ledger,
    snapshot,
    usage_from_records,
    write_config,
)

H, DAY = 3_600, 86_400
USERS = ("5511900000001", "5511900000002", "5511900000003")
ERAS = {  # a mid-month moment in each era, and the categories Meta reports in it
    "cbp-2022": (1_654_041_600 + 9 * DAY, ("business_initiated", "user_initiated")),
    "cbp-2023": (1_700_000_000, ("marketing", "utility", "authentication", "service")),
    "cbp-2024-11": (1_733_011_200 + 9 * DAY, ("marketing", "utility", "service")),
    "pmp-2025-07": (1_762_000_000 + 9 * DAY, ("marketing", "utility", "authentication", "service")),
    "pmp-2026-10": (1_790_812_800 + 9 * DAY, ("marketing", "utility", "service")),
}


@st.composite
def histories(draw: st.DrawFn, span: int = 3 * DAY) -> list[Event]:
    era = draw(st.sampled_from(sorted(ERAS)))
    base, categories = ERAS[era]
    pmp = era.startswith("pmp")
    events: list[Event] = []
    for n in range(draw(st.integers(0, 4))):
        user = draw(st.sampled_from(USERS))
        t = base + draw(st.integers(0, span))
        referral = draw(st.integers(0, 4)) == 0
        events.append(Inbound(Pair(WABA, PHONE, user), f"wamid.in{n}", t, "text", referral))
    for n in range(draw(st.integers(1, 9))):
        user = draw(st.sampled_from(USERS))
        t = base + draw(st.integers(0, span))
        category = draw(st.sampled_from(categories))
        # Meta's conversation ids: a few per user, never reused beyond a couple of days
        period = t // (2 * DAY)
        conv = (
            None
            if pmp or draw(st.booleans())
            else f"c-{user[-1]}-{period}-{draw(st.integers(0, 2))}"
        )
        kinds = draw(st.sets(st.sampled_from(["sent", "delivered", "read", "failed"]), min_size=1))
        for kind in sorted(kinds):
            offset = {"sent": -5, "delivered": 0, "read": 40, "failed": 10}[kind]
            pricing = None
            if draw(st.integers(0, 3)) > 0:
                ptype = draw(st.sampled_from(["regular", "free_customer_service"])) if pmp else None
                pricing = Pricing(True, "PMP" if pmp else "CBP", category, ptype)
            conversation = Conversation(conv, None, category) if conv else None
            events.append(
                Status(
                    Pair(WABA, PHONE, user),
                    f"wamid.out{n}",
                    kind,
                    t + offset,
                    conversation,
                    pricing,
                )
            )
    return events


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def real(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


Backend = Callable[[], tuple[redis.Redis, str, Callable[[], None]]]


@pytest.fixture(scope="module")
def on_cluster(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """The ledger on the local Redis Cluster (keys tagged by portfolio)."""
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(request.getfixturevalue("redis_cluster").url)
    yield client  # type: ignore[misc]
    client.close()


@pytest.fixture(params=["twin", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend(request: pytest.FixtureRequest) -> Backend:
    """A fresh namespace per example: (client, prefix, cleanup)."""
    if request.param == "twin":
        return lambda: (fakeredis.FakeRedis(), "p", lambda: None)
    client = request.getfixturevalue("on_cluster" if request.param == "cluster" else "real")

    def fresh() -> tuple[redis.Redis, str, Callable[[], None]]:
        prefix = "prop" + secrets.token_hex(4)

        def cleanup() -> None:
            keys = list(client.scan_iter(f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)

        return client, prefix, cleanup

    return fresh


def applied(backend: Backend, config_dir: Path, batches: list[list[Event]]) -> dict[str, Any]:
    client, prefix, cleanup = backend()
    try:
        ledger = make_ledger(client, prefix, config_dir, limit=2)
        for batch in batches:
            ledger.apply(batch)
        return snapshot(client, prefix)
    finally:
        cleanup()


PROPERTY = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(events=histories(), data=st.data())
def test_any_order_and_redeliveries_give_the_same_records_and_usage(
    backend: Backend, config_dir: Path, events: list[Event], data: st.DataObject
) -> None:
    """Records and counters are the same for any arrival order and any number of redeliveries."""
    reference = applied(backend, config_dir, [sorted(events, key=lambda e: e.timestamp)])
    arrival = data.draw(st.permutations(events))
    arrival += data.draw(st.lists(st.sampled_from(events), max_size=6))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=4)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]
    assert applied(backend, config_dir, batches) == reference


@PROPERTY
@given(events=histories(span=25 * DAY), data=st.data())
def test_histories_longer_than_the_pair_horizon_give_the_same_result_in_any_batching(
    backend: Backend, config_dir: Path, events: list[Event], data: st.DataObject
) -> None:
    """Trimming a pair's history (10-day horizon) never loses a unit: events arriving up to two
    days late, split into any batches, give what one event at a time in time order gives."""
    in_order = sorted(events, key=lambda e: e.timestamp)
    reference = applied(backend, config_dir, [[e] for e in in_order])
    late = {id(e): data.draw(st.integers(0, 2 * DAY)) for e in events}
    arrival = sorted(events, key=lambda e: e.timestamp + late[id(e)])
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=6)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]
    assert applied(backend, config_dir, batches) == reference
    assert applied(backend, config_dir, [in_order]) == reference


@PROPERTY
@given(events=histories())
def test_counters_equal_the_records_they_summarize(
    backend: Backend, config_dir: Path, events: list[Event]
) -> None:
    seen = applied(backend, config_dir, [events])
    assert seen["usage"] == {k: v for k, v in usage_from_records(seen["records"]).items() if v}


@PROPERTY
@given(events=histories())
def test_no_message_is_charged_twice(
    backend: Backend, config_dir: Path, events: list[Event]
) -> None:
    records = applied(backend, config_dir, [events])["records"].values()
    wamids = [r["wamid"] for r in records]
    assert len(wamids) == len(set(wamids))


@PROPERTY
@given(events=histories())
def test_allowance_frees_exactly_the_first_units_in_charge_time_order(
    backend: Backend, config_dir: Path, events: list[Event]
) -> None:
    """The first `limit` units of a bucket (by charge time, then wamid) are free_tier, except
    where Meta's pricing.type said otherwise (pmp-2026-10, rule book 9.3): Meta's answer is
    kept and the record marked service_allowance_mismatch."""
    records = applied(backend, config_dir, [events])["records"].values()
    buckets: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for rec in records:
        if rec["free_reason"] == "free_tier" or (rec["billable"] and _in_allowance(rec)):
            key = (rec["policy"], rec["billing_month"], rec["phone_number_id"])
            buckets.setdefault(key, []).append(rec)
    for units in buckets.values():
        units.sort(key=lambda r: (r["charge_time"], r["wamid"]))
        free = [r["free_reason"] == "free_tier" for r in units]
        marked = ["service_allowance_mismatch" in (r["discrepancy"] or "") for r in units]
        by_place = [True] * min(2, len(units)) + [False] * max(0, len(units) - 2)
        assert free == [place != meta for place, meta in zip(by_place, marked, strict=True)]


def _in_allowance(rec: dict[str, Any]) -> bool:
    allowed = {
        "cbp-2022": {"business_initiated", "user_initiated"},
        "cbp-2023": {"service"},
        "pmp-2026-10": {"service"},
    }
    return rec["category"] in allowed.get(rec["policy"], set())

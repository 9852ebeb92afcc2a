"""Corrections as deltas (processor/core/deltas.py): the target's sums equal the latest
versions, whatever the corrections, their order and their retries."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.deltas import Amounts, Sent, amounts_of, plan
from tests.sink_helpers import record


def test_a_first_version_is_sent_whole_under_its_key() -> None:
    events, after = plan(record("r1", 1), "acct", None)
    assert [e.key for e in events] == ["r1:1"]
    assert events[0].amounts == Amounts(1, Decimal("0.0625"), Decimal("0.0700"))
    assert after.version == 1


def test_a_correction_in_the_same_grouping_is_sent_as_the_difference() -> None:
    _, sent = plan(record("r1", 1), "acct", None)
    events, _ = plan(record("r1", 2, cost="0.0500", billed_cost="0.0560"), "acct", sent)
    assert [(e.key, e.amounts) for e in events] == [
        ("r1:2", Amounts(0, Decimal("-0.0125"), Decimal("-0.0140")))
    ]


def test_a_correction_to_another_market_reverses_the_old_grouping_and_sends_the_new() -> None:
    _, sent = plan(record("r1", 1), "acct", None)
    events, _ = plan(record("r1", 2, market="India", charge_time="2026-11-21T00:00:00Z"),
                     "acct", sent)  # fmt: skip
    assert [e.key for e in events] == ["r1:2:reversal", "r1:2"]
    assert events[0].dims["market"] == "Brazil" and events[0].time == "2026-11-20T10:00:00Z"
    assert events[0].amounts == Amounts(-1, Decimal("-0.0625"), Decimal("-0.0700"))
    assert events[1].dims["market"] == "India"


def test_a_void_version_only_reverses() -> None:
    _, sent = plan(record("r1", 1), "acct", None)
    events, _ = plan(record("r1", 2, void=True, billable=False, cost="0", billed_cost="0"),
                     "acct", sent)  # fmt: skip
    assert sum(e.amounts.units for e in events) == -1
    assert sum(e.amounts.cost for e in events) == Decimal("-0.0625")


def test_an_older_or_equal_version_plans_nothing() -> None:
    _, sent = plan(record("r1", 3), "acct", None)
    assert plan(record("r1", 2), "acct", sent) == ([], sent)
    assert plan(record("r1", 3), "acct", sent) == ([], sent)


def test_an_unchanged_correction_sends_nothing() -> None:
    _, sent = plan(record("r1", 1), "acct", None)
    events, after = plan(record("r1", 2), "acct", sent)
    assert events == [] and after.version == 2


def test_an_unrated_cost_counts_zero() -> None:
    assert amounts_of(record("r", 1, cost=None, billed_cost=None)) == Amounts(1, 0, 0)


def test_the_sent_state_round_trips() -> None:
    _, sent = plan(record("r1", 1), "acct", None)
    assert Sent.load(sent.dump()) == sent
    assert '"m"' not in sent.dump()  # message states are stored as before calls existed
    _, call = plan(record("c1", 1, kind="call", billed_minutes="1.1"), "acct", None)
    assert Sent.load(call.dump()) == call


def test_a_call_counts_its_billed_minutes_and_a_correction_sends_their_difference() -> None:
    """Billing engines meter calls by minute: a call's events carry its billed minutes."""
    first, sent = plan(record("c1", 1, kind="call", billed_minutes="1.1"), "acct", None)
    assert first[0].amounts == Amounts(1, Decimal("0.0625"), Decimal("0.0700"), Decimal("1.1"))
    again, _ = plan(record("c1", 2, kind="call", billed_minutes="1.1"), "acct", sent)
    assert again == []  # a new version for a new running total only: nothing to send
    void, _ = plan(record("c1", 3, kind="call", billed_minutes="1.1", void=True), "acct", sent)
    assert [e.amounts.minutes for e in void] == [Decimal("-1.1")]


versions = st.lists(
    st.fixed_dictionaries({
        "market": st.sampled_from(["Brazil", "India"]),
        "billing_month": st.sampled_from(["2026-10", "2026-11"]),
        "cost": st.sampled_from(["0", "0.0625", "0.0068", None]),
        "billable": st.booleans(),
        "void": st.booleans(),
        "account": st.sampled_from(["a", "b"]),
        "minutes": st.sampled_from([None, "0.1", "1.0", "2.5"]),  # a call's billed minutes
    }),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(versions, st.randoms(use_true_random=False))
def test_sums_at_the_target_equal_the_latest_version_in_any_order_with_retries(
    changes: list[dict[str, Any]], rng: Any
) -> None:
    recs = [
        record("r1", i + 1, market=c["market"], billing_month=c["billing_month"], cost=c["cost"],
               billed_cost=c["cost"], billable=c["billable"], void=c["void"],
               kind="call" if c["minutes"] else "message", billed_minutes=c["minutes"])
        for i, c in enumerate(changes)
    ]  # fmt: skip
    accounts = {r["version"]: c["account"] for r, c in zip(recs, changes, strict=True)}
    order = recs[:] + rng.sample(recs, k=min(2, len(recs)))  # replays and retries
    rng.shuffle(order)
    target: dict[str, Any] = {}  # key -> event (the target deduplicates by key)
    state = None
    for rec in order:
        events, state = plan(rec, accounts[rec["version"]], state)
        for e in events:
            target.setdefault(e.key, e)
    sums: dict[tuple[Any, ...], Amounts] = defaultdict(lambda: Amounts(0, Decimal(0), Decimal(0)))
    for e in target.values():
        group = (*e.dims.values(),)
        sums[group] = sums[group].minus(e.amounts.negated())
    latest = max(recs, key=lambda r: r["version"])
    expected = amounts_of(latest)
    group = (*(latest.get(k) for k in ("billing_month", "category", "market", "billable",
             "free_reason", "currency")), accounts[latest["version"]])  # fmt: skip
    assert sums[group] == expected
    assert all(a.zero for g, a in sums.items() if g != group)

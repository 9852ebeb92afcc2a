"""Invariants of calls through the real apply script (fakeredis twin and a real Redis): any
arrival order, redeliveries and batching give the same call records and usage; every charged
call is priced as the pure whole-call rule (``processor.core.calls.price_bucket``) prices its
bucket in (charge time, call id) order; usage minutes equal the records' pulses."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.core.calls import BUSINESS_INITIATED, USER_INITIATED, CallTier, price_bucket
from processor.core.events import CallEvent, Event, Pair, Pricing, Status
from tests.ledger_helpers import PHONE, WABA, write_config
from tests.test_ledger_properties import (  # the backends' fixtures are used here too
    PROPERTY,
    Backend,
    applied,
    backend,  # noqa: F401
    on_cluster,  # noqa: F401
    real,  # noqa: F401
)

T0 = 1_795_000_000  # 2026-11-18
USERS = ("5511900000001", "5511900000002")
TIERS = (  # small bounds (minutes) so that crossings are cheap; test values only
    CallTier(D(0), D(1), D("0.0100")),
    CallTier(D(1), D("2.5"), D("0.0080")),
    CallTier(D("2.5"), None, D("0.0050")),
)
CALLING_TIERS = (
    "effective_from,market,currency,from_minutes,to_minutes,rate_per_minute\n"
    + "".join(
        f"2025-08-01,Brazil,USD,{t.from_minutes},{t.to_minutes or ''},{t.rate_per_minute}\n"
        for t in TIERS
    )
)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_config(tmp_path_factory.mktemp("config"))
    (directory / "calling_tiers.csv").write_text(CALLING_TIERS)
    return directory


@st.composite
def calls(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for n in range(draw(st.integers(1, 7))):
        pair = Pair(WABA, PHONE, draw(st.sampled_from(USERS)))
        call_id = f"wacid.{n}"
        end = T0 + draw(st.integers(0, 600))
        duration = draw(st.sampled_from([None, 0, 1, 6, 7, 30, 56, 61, 90]))
        uic = draw(st.integers(0, 3)) == 0
        direction = USER_INITIATED if uic else BUSINESS_INITIATED
        start = None if not duration else end - duration
        events.append(
            CallEvent(
                pair,
                call_id,
                "terminate",
                end + 1,
                direction,
                "COMPLETED",
                start,
                None if start is None else end,
                duration,
            )
        )
        if draw(st.booleans()):
            events.append(CallEvent(pair, call_id, "connect", end - 100, direction))
        if not uic and draw(st.booleans()):
            events.append(CallEvent(pair, call_id, "accepted", end - 95))
    for n in range(draw(st.integers(0, 3))):  # utility templates the CSW from calls may free
        user = draw(st.sampled_from(USERS))
        at = T0 + draw(st.integers(-3_600, 3_600))
        pricing = Pricing(True, "PMP", "utility", None)
        events.append(
            Status(Pair(WABA, PHONE, user), f"wamid.u{n}", "delivered", at, None, pricing)
        )
    return events


@PROPERTY
@given(events=calls(), data=st.data())
def test_any_order_gives_the_same_call_records_and_usage(
    backend: Backend,  # noqa: F811 (the fixture imported above)
    config_dir: Path,
    events: list[Event],
    data: st.DataObject,
) -> None:
    """Late calls re-number their bucket: the result is what time order gives."""
    reference = applied(backend, config_dir, [sorted(events, key=lambda e: e.timestamp)])
    arrival = data.draw(st.permutations(events))
    arrival += data.draw(st.lists(st.sampled_from(events), max_size=4))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=4)))
    batches = [arrival[a:b] for a, b in zip([0, *cuts], [*cuts, len(arrival)], strict=True)]
    assert applied(backend, config_dir, batches) == reference


@PROPERTY
@given(events=calls())
def test_calls_are_priced_whole_by_the_running_total(
    backend: Backend,  # noqa: F811 (the fixture imported above)
    config_dir: Path,
    events: list[Event],
) -> None:
    """Each charged call costs what the pure rule gives its bucket; free calls never accrue;
    usage counts and minutes equal the records."""
    seen = applied(backend, config_dir, [events])
    records = [r for r in seen["records"].values() if r["kind"] == "call"]
    charged = [r for r in records if r["direction"] == BUSINESS_INITIATED]
    expected = price_bucket([(r["charge_time"], r["call_id"], r["pulses"]) for r in charged], TIERS)
    by_id = {r["call_id"]: r for r in charged}
    for priced in expected:
        rec = by_id[priced.call_id]
        assert D(rec["cost"]) == priced.cost
        assert D(rec["tier_minutes_after"]) == priced.minutes_after
    for rec in records:
        if rec["direction"] == USER_INITIATED:
            assert (rec["billable"], rec["free_reason"], rec["cost"]) == (
                False,
                "free_user_initiated",
                "0",
            )
    minutes: Counter[str] = Counter()
    for line, count in next(iter(seen["usage"].values()), Counter()).items():
        if line.startswith("m|") and line.split("|")[1] == "calling":
            minutes["all"] += count
    assert minutes["all"] == sum(r["pulses"] for r in records)
    assert all(r["pulses"] > 0 for r in records)  # unanswered calls have no record
    assert len({r["call_id"] for r in records}) == len(records)


def test_a_late_call_of_one_waba_corrects_the_other_wabas_calls(
    backend: Backend,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    """A bucket is the portfolio's (on a cluster: under the portfolio's hash tag): W1's late
    call moves W2's call across a bound, and a rerate agrees with the apply script."""
    from processor.config_files import load_ratebook
    from processor.store.cluster import is_cluster
    from processor.store.rerate import Rerater
    from tests.ledger_helpers import keys_for, make_ledger, snapshot

    directory = write_config(tmp_path / "config")
    (directory / "calling_tiers.csv").write_text(CALLING_TIERS)
    (directory / "wabas.csv").write_text(
        "waba_id,currency,timezone,portfolio_id\nw-1,USD,UTC,P1\nw-2,USD,UTC,P1\n"
    )
    client, prefix, cleanup = backend()
    try:
        ledger = make_ledger(client, prefix, directory)

        def bic(waba: str, n: int, end: int, seconds: int) -> CallEvent:
            pair = Pair(waba, f"9{waba[-1]}", USERS[0])
            return CallEvent(
                pair, f"wacid.{n}", "terminate", end, BUSINESS_INITIATED, "COMPLETED",
                end - seconds, end, seconds,
            )  # fmt: skip

        ledger.apply([bic("w-2", 1, T0 + 600, 60)])  # alone: 1.0 minute, tier 1
        ledger.apply([bic("w-1", 2, T0, 30)])  # earlier: w-2's call ends at 1.5, tier 2
        records = snapshot(client, prefix)["records"]
        by_call = {r["call_id"]: r for r in records.values()}
        assert (by_call["wacid.2"]["tier"], by_call["wacid.2"]["cost"]) == ("0:1", "0.0050")
        assert (by_call["wacid.1"]["tier"], by_call["wacid.1"]["tier_minutes_after"]) == (
            "2:2.5",
            "1.5",
        )
        if is_cluster(client):  # rerate on a cluster: tests/test_ledger_cluster.py (own client)
            return
        keys = keys_for(client, prefix, directory)
        rerater = Rerater(client, keys, load_ratebook(directory), 100)
        assert rerater.rerate(by_call["wacid.1"]["billing_month"]).changed == 0
    finally:
        cleanup()

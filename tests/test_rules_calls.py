"""Rule book §8 (calls), the pure part: pulses, duration, charge time, whole-call minute tiers
and when a call opens the customer service window. Test ids are the book's (§8.6).

Fixture rates (§8.6, for tests only): Rest of Central & Eastern Europe, USD per minute 0.0095
(0 to 50,000), 0.0076 (50,001 to 250,000), 0.0066 (250,001 to 1M).
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from processor.core.calls import (
    BUSINESS_INITIATED,
    DURATION_MISMATCH,
    USER_INITIATED,
    CallTier,
    Terminate,
    billed_minutes,
    call_cost,
    charge_time,
    connected,
    price_bucket,
    pulses,
    tier_after,
    window_opened_at,
)

CEE = (
    CallTier(D(0), D(50_000), D("0.0095")),
    CallTier(D(50_000), D(250_000), D("0.0076")),
    CallTier(D(250_000), D(1_000_000), D("0.0066")),
)
T0 = 1_795_000_000  # 2026-11-18T...Z: any second will do for the pure rules


def bic(duration: int | None, status: str = "COMPLETED", **times: int) -> Terminate:
    return Terminate("wacid.X", BUSINESS_INITIATED, status, T0 + 600, duration=duration, **times)


def cost_alone(duration: int) -> D | None:
    """A BIC of ``duration`` seconds in an empty bucket."""
    facts = connected(bic(duration))
    assert facts is not None
    return price_bucket([(T0, "c", facts.pulses)], CEE)[0].cost


@pytest.mark.parametrize(
    ("duration", "pulse_count", "minutes", "cost"),
    [
        pytest.param(56, 10, D("1.0"), D("0.0095"), id="C-1 56s is 10 pulses"),
        pytest.param(61, 11, D("1.1"), D("0.01045"), id="C-2 61s is 11 pulses"),
        pytest.param(1, 1, D("0.1"), D("0.00095"), id="C-3 1s is a pulse"),
        pytest.param(6, 1, D("0.1"), D("0.00095"), id="C-3 6s is a pulse"),
        pytest.param(7, 2, D("0.2"), D("0.0019"), id="C-3 7s is two pulses"),
    ],
)
def test_call_pulses_round_up_and_cost_is_exact(
    duration: int, pulse_count: int, minutes: D, cost: D
) -> None:
    """§8.1.3/§8.1.5: ceil(duration/6) pulses, minutes = pulses/10, cost = pulses × rate / 10."""
    assert pulses(duration) == pulse_count
    assert billed_minutes(pulse_count) == minutes
    assert cost_alone(duration) == cost


@given(st.integers(min_value=0, max_value=10**7))
@example(0)
@example(5)
@example(6)
@example(7)
@example(12)
@example(13)
def test_call_pulses_cover_the_duration_by_less_than_one_pulse(duration: int) -> None:
    """A pulse count is the least whole number of 6-second pulses covering the duration."""
    count = pulses(duration)
    assert 6 * count >= duration > 6 * (count - 1) or duration == count == 0


def test_call_cost_never_rounds_per_pulse() -> None:
    """§8.1.5: the exact product, to any number of places."""
    assert call_cost(3, D("0.0033")) == D("0.00099")


def test_call_not_answered_has_no_charge() -> None:
    """C-4: a terminate without a duration (never picked up) gives no record."""
    assert connected(bic(None, "FAILED")) is None
    assert connected(bic(0)) is None


def test_call_not_answered_does_not_open_the_window() -> None:
    """C-4 / §8.2: a rejected or unanswered BIC does not touch the customer service window."""
    assert window_opened_at(BUSINESS_INITIATED, terminate=bic(None, "FAILED")) is None


def test_call_failed_but_connected_is_charged() -> None:
    """C-9 (Decision §8.1.11): FAILED with a 20-second duration is 4 pulses, 0.0038."""
    facts = connected(bic(20, "FAILED", start_time=T0, end_time=T0 + 20))
    assert facts is not None and facts.pulses == 4 and facts.discrepancy is None
    assert call_cost(facts.pulses, D("0.0095")) == D("0.0038")


def test_call_duration_beats_start_and_end() -> None:
    """C-18: duration 120 with end − start = 100 is 20 pulses and a discrepancy."""
    facts = connected(bic(120, start_time=T0, end_time=T0 + 100))
    assert facts is not None
    assert (facts.pulses, facts.discrepancy) == (20, DURATION_MISMATCH)


def test_call_duration_from_start_and_end_when_absent() -> None:
    """§8.1.10: no duration, but start and end: their difference, no discrepancy."""
    facts = connected(bic(None, start_time=T0, end_time=T0 + 30))
    assert facts is not None and (facts.duration_s, facts.discrepancy) == (30, None)


def test_call_one_second_apart_is_no_mismatch() -> None:
    """§8.1.10: only a difference of more than one second is a discrepancy."""
    facts = connected(bic(21, start_time=T0, end_time=T0 + 20))
    assert facts is not None and facts.discrepancy is None


def test_call_charge_time_is_end_time() -> None:
    """C-12 / §8.1.9: a call across midnight is dated by its end (the billing month follows)."""
    call = bic(70, start_time=T0, end_time=T0 + 70)
    assert charge_time(call) == T0 + 70
    assert charge_time(bic(70)) == T0 + 600  # no end_time: the terminate's timestamp


def test_call_tier_crossing_prices_the_whole_call_at_the_new_tier() -> None:
    """C-5: bucket at 49,999.5 min, a 2.0-min call: after 50,001.5 → all at 0.0076 = 0.0152."""
    [call] = price_bucket([(T0, "x", 20)], CEE, minutes_before=D("49999.5"))
    assert call.cost == D("0.0152") and call.tier is not None
    assert call.tier.label == "50001:250000"
    assert call.minutes_after == D("50001.5")


def test_call_ending_on_a_bound_stays_in_the_lower_tier() -> None:
    """C-6: after = 50,000.0 is tier 1 (0.0190); the next 6 s call, after 50,000.1, is tier 2."""
    first, second = price_bucket([(T0, "a", 20), (T0 + 60, "b", 1)], CEE, D("49998.0"))
    assert (first.cost, second.cost) == (D("0.0190"), D("0.00076"))
    assert first.tier is not None and first.tier.label == "0:50000"


def test_call_late_call_reorders_the_bucket() -> None:
    """C-7: a late 30 s call that ended first takes the earlier place; X crosses to tier 2."""
    before = price_bucket([(T0 + 3600, "X", 20)], CEE, D("49998.0"))
    after = price_bucket([(T0 + 3600, "X", 20), (T0, "L", 5)], CEE, D("49998.0"))
    assert [c.cost for c in before] == [D("0.0190")]
    assert [(c.call_id, c.cost) for c in after] == [("L", D("0.00475")), ("X", D("0.0152"))]


def test_call_portfolio_accrual_spans_wabas() -> None:
    """C-17: W1's 30,000 and W2's 25,000 minutes share a bucket; W2's call passing 50,000 is
    tier 2. (The bucket is the portfolio's; which WABA placed a call does not matter.)"""
    w1 = [(T0 + i, f"w1-{i}", 600) for i in range(500)]  # 500 × 60 min = 30,000 min
    w2 = [(T0 + 1000 + i, f"w2-{i}", 600) for i in range(417)]  # 25,020 min
    priced = {c.call_id: c for c in price_bucket(w1 + w2, CEE)}
    assert priced["w2-332"].tier == CEE[0]  # 30,000 + 333 × 60 = 49,980
    assert priced["w2-333"].tier == CEE[1]  # 50,040: the call that passes 50,000


def test_call_beyond_the_last_tier_is_unrated() -> None:
    """No tier holds the total: no rate (unrated), never a guess."""
    [call] = price_bucket([(T0, "x", 20)], CEE, D("999999.0"))
    assert call.tier is None and call.cost is None and call.rate is None


def test_call_bucket_rejects_a_fraction_of_a_pulse() -> None:
    with pytest.raises(ValueError):
        price_bucket([], CEE, D("0.05"))


@given(st.decimals(min_value=0, max_value=2_000_000, places=1))
@example(D(0))
@example(D("0.1"))
@example(D(50_000))
@example(D("50000.1"))
@example(D(250_000))
def test_call_tier_bounds_are_inclusive_above(minutes: D) -> None:
    """§8.1.7: a total on a bound belongs to the lower tier; one pulse more, to the next."""
    tier = tier_after(CEE, minutes)
    if minutes == 0 or minutes > 1_000_000:
        assert tier is None
    else:
        assert tier is not None and tier.from_minutes < minutes
        assert tier.to_minutes is not None and minutes <= tier.to_minutes


def test_call_user_initiated_opens_the_window_at_its_first_event() -> None:
    """C-14 / §8.2: a UIC, even missed, opens the window at its connect; else at start_time,
    else at the terminate's timestamp."""
    missed = Terminate("wacid.U", USER_INITIATED, "FAILED", T0 + 30)
    assert window_opened_at(USER_INITIATED, connect_at=T0, terminate=missed) == T0
    assert window_opened_at(USER_INITIATED, terminate=missed) == T0 + 30
    answered = Terminate("wacid.U", USER_INITIATED, "COMPLETED", T0 + 90, T0 + 10, T0 + 90, 80)
    assert window_opened_at(USER_INITIATED, terminate=answered) == T0 + 10


def test_call_business_initiated_opens_the_window_when_accepted() -> None:
    """C-15 / C-11 / §8.2: a BIC opens the window at ACCEPTED, else at the terminate's
    start_time; its connect (SDP answer) is not an acceptance."""
    assert window_opened_at(BUSINESS_INITIATED, connect_at=T0, accepted_at=T0 + 5) == T0 + 5
    only_terminate = bic(30, start_time=T0 + 7, end_time=T0 + 37)
    assert window_opened_at(BUSINESS_INITIATED, connect_at=T0, terminate=only_terminate) == T0 + 7
    assert window_opened_at(BUSINESS_INITIATED, connect_at=T0) is None

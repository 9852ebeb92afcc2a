"""Rule book sections 1 and 2: the customer service window, the free entry point, the charge
time, the billing month, and the era chosen by the charge time in the WABA's time zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from processor.core.events import Event
from processor.core.policies import (
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    MARKETING,
    POLICIES,
    REFERRAL,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
    local_month,
)
from tests.rules_helpers import (
    ERA,
    H,
    delivered,
    failed,
    inbound,
    only,
    read,
    reply,
    run,
    sent,
    ts,
    units,
)

PMP = ERA["pmp-2025-07"]
CBP = ERA["cbp-2023"]


def utility_free(events: Sequence[Event], at: int) -> bool:
    """Whether a utility template delivered at ``at`` is free under pmp-2025-07 (in the CSW)."""
    unit = only([*events, delivered("probe", at, UTILITY)])
    return unit.free_reason == FREE_CUSTOMER_SERVICE


# -- customer service window -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delivered_at", "in_csw"),
    [
        pytest.param(-1, False, id="before-the-user-wrote"),
        pytest.param(0, True, id="at-the-user-message"),
        pytest.param(24 * H - 1, True, id="last-second"),
        pytest.param(24 * H, False, id="exactly-24h-outside"),
    ],
)
def test_csw_lasts_24h_from_the_user_message(delivered_at: int, in_csw: bool) -> None:
    """The CSW opens when U sends P a message at t and lasts until t + 24h (half-open)."""
    assert utility_free([inbound(PMP)], PMP + delivered_at) is in_csw


def test_csw_moves_with_every_later_user_message() -> None:
    """Every later message from U moves the end to its own t + 24h."""
    events = [inbound(PMP), inbound(PMP + 20 * H)]
    assert utility_free(events, PMP + 30 * H)
    assert utility_free(events, PMP + 44 * H - 1)
    assert not utility_free(events, PMP + 44 * H)


def test_csw_is_not_opened_by_business_messages() -> None:
    """Only a message from U opens the CSW; the business's own messages do not."""
    events = [delivered("w0", PMP, MARKETING)]
    found = units([*events, delivered("probe", PMP + H, UTILITY)])
    assert [u.free_reason for u in found] == [None, None]


# -- free entry point ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply_at", "fep"),
    [
        pytest.param(H, True, id="reply-after-1h"),
        pytest.param(24 * H - 1, True, id="reply-at-last-second"),
        pytest.param(24 * H, False, id="reply-exactly-24h-no-fep"),
        pytest.param(30 * H, False, id="reply-after-30h-no-fep"),
    ],
)
@pytest.mark.parametrize("era", ["cbp-2022", "cbp-2023", "pmp-2025-07"])
def test_fep_opens_only_when_the_first_reply_is_delivered_within_24h(
    era: str, reply_at: int, fep: bool
) -> None:
    """FEP opens when the business's first message after an entry-point inbound is delivered
    within 24h of that inbound; a reply after 24h opens no FEP."""
    t0 = ERA[era]
    evaluation = run([inbound(t0, referral=True), delivered("w1", t0 + reply_at)])
    assert (REFERRAL in [u.category for u in evaluation.units]) is fep


def test_inbound_without_referral_opens_no_fep() -> None:
    """Only an inbound carrying a referral object is an entry point."""
    unit = only([inbound(PMP), delivered("w1", PMP + H, MARKETING)])
    assert unit.category == MARKETING


@pytest.mark.parametrize(
    ("second_at", "inside"),
    [
        pytest.param(72 * H - 1, True, id="last-second-inside"),
        pytest.param(72 * H, False, id="exactly-72h-outside"),
    ],
)
def test_fep_lasts_72h_from_the_delivery_that_opened_it(second_at: int, inside: bool) -> None:
    """It lasts 72h from that delivery; [t, t + 72h) is half-open."""
    opened = PMP + 2 * H
    events = [
        inbound(PMP, referral=True),
        delivered("w1", opened, MARKETING),
        delivered("w2", opened + second_at, MARKETING),
    ]
    second = units(events)[1]
    assert (second.category == REFERRAL) is inside


def test_only_the_first_reply_can_open_the_fep() -> None:
    """The FEP is opened by the business's first delivered message after the entry point: a
    first reply after 24h opens none, and no later message can open it instead."""
    events = [
        inbound(PMP, referral=True),
        delivered("w1", PMP + 25 * H, MARKETING),  # too late: no FEP, and the chance is used
        delivered("w2", PMP + 26 * H, MARKETING),
    ]
    assert [u.category for u in units(events)] == [MARKETING, MARKETING]


def test_a_new_entry_point_after_the_fep_can_open_another() -> None:
    """Each entry-point inbound arms the next reply."""
    events = [
        inbound(PMP, referral=True),
        delivered("w1", PMP + H, MARKETING),  # FEP [h1, h73)
        delivered("w2", PMP + 80 * H, MARKETING),  # after it: charged
        inbound(PMP + 90 * H, referral=True),
        delivered("w3", PMP + 91 * H, MARKETING),  # a new FEP
    ]
    assert [u.category for u in units(events)] == [REFERRAL, MARKETING, REFERRAL]


def test_fep_length_is_a_policy_parameter() -> None:
    """Decision: 72h, but the length is a policy parameter (a 7-day FEP is one edit away)."""
    week = PolicyBook([replace(p, fep_hours=7 * 24) for p in POLICIES])
    events = [
        inbound(PMP, referral=True),
        delivered("w1", PMP + H, MARKETING),
        delivered("w2", PMP + 100 * H, MARKETING),
    ]
    assert [u.category for u in units(events)] == [REFERRAL, MARKETING]
    assert [u.category for u in units(events, book=week)] == [REFERRAL, REFERRAL]


# -- charge time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "charge_time"),
    [
        pytest.param([("delivered", 5)], 5, id="delivered"),
        pytest.param([("sent", 1), ("delivered", 5), ("read", 9)], 5, id="sent-delivered-read"),
        pytest.param([("read", 9)], 9, id="read-without-delivered"),
        pytest.param([("read", 4), ("delivered", 7)], 4, id="read-before-delivered"),
        pytest.param([("delivered", 7), ("delivered", 6)], 6, id="delivered-twice-earliest"),
    ],
)
def test_charge_time_is_the_earlier_of_delivered_and_read(
    statuses: list[tuple[str, int]], charge_time: int
) -> None:
    """The timestamp of `delivered`; when `read` is seen without `delivered`, the `read`
    timestamp; if both are known, the earlier."""
    maker = {"sent": sent, "delivered": delivered, "read": read}
    events = [maker[state]("w1", PMP + t, MARKETING) for state, t in statuses]
    assert only(events).charge_time == PMP + charge_time


@pytest.mark.parametrize(
    "statuses",
    [
        pytest.param(["sent"], id="sent-only"),
        pytest.param(["failed"], id="failed"),
        pytest.param(["sent", "failed"], id="sent-then-failed"),
    ],
)
def test_a_message_never_delivered_is_never_charged(statuses: list[str]) -> None:
    """Nothing is charged for a message that is never delivered (failed, or only sent)."""
    events = [
        sent("w1", PMP, MARKETING) if s == "sent" else failed("w1", PMP + 1) for s in statuses
    ]
    evaluation = run(events)
    assert (evaluation.units, evaluation.pending) == ((), ())


@pytest.mark.parametrize("era", ["cbp-2022", "cbp-2023", "pmp-2025-07"])
def test_undelivered_messages_neither_open_nor_close_windows(era: str) -> None:
    """The first business message after an entry-point inbound is the first delivered one;
    undelivered messages neither open nor close any window."""
    t0 = ERA[era]
    events = [
        inbound(t0, referral=True),
        sent("w1", t0 + H, MARKETING),  # never delivered
        failed("w2", t0 + 2 * H),
        delivered("w3", t0 + 3 * H),  # the first delivered reply: opens the FEP
    ]
    unit = only(events)
    assert (unit.wamid, unit.category, unit.free_reason) == ("w3", REFERRAL, FREE_ENTRY_POINT)


def test_undelivered_template_opens_no_conversation() -> None:
    """A failed template does not open its conversation: the next one, delivered, does."""
    events = [
        sent("w1", CBP, MARKETING),
        failed("w1", CBP + 1),
        delivered("w2", CBP + H, MARKETING),
    ]
    unit = only(events)
    assert (unit.wamid, unit.charge_time, unit.expires_at) == ("w2", CBP + H, CBP + 25 * H)


# -- eras and billing months in the WABA's time zone ------------------------------------------

BOUNDARIES = [
    ("2022-02-01T00:00", "cbp-2022"),
    ("2023-06-01T00:00", "cbp-2023"),
    ("2024-11-01T00:00", "cbp-2024-11"),
    ("2025-07-01T00:00", "pmp-2025-07"),
    ("2026-10-01T00:00", "pmp-2026-10"),
]
ZONES = ["UTC", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Auckland"]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("starts", "policy"), BOUNDARIES, ids=[p for _, p in BOUNDARIES])
def test_era_is_chosen_by_the_local_date_of_the_charge_time(
    starts: str, policy: str, zone: str
) -> None:
    """Eras are chosen by charge time; dates are boundaries in the WABA's time zone."""
    tz = ZoneInfo(zone)
    boundary = ts(starts, zone)
    before = run([delivered("w1", boundary - 1, MARKETING)], tz).units
    after = only([delivered("w1", boundary, MARKETING)], tz)
    assert after.policy == policy
    assert [u.policy for u in before] != [policy]


def test_the_same_instant_falls_in_different_eras_in_different_zones() -> None:
    """2025-06-30T22:30Z is already July in Berlin (pmp) but still June in UTC (cbp)."""
    t = ts("2025-06-30T22:30")
    berlin = only([delivered("w1", t, UTILITY)], ZoneInfo("Europe/Berlin"))
    utc = only([delivered("w1", t, UTILITY)], ZoneInfo("UTC"))
    assert (berlin.policy, berlin.kind, berlin.bucket) == ("pmp-2025-07", "message", VOLUME_TIER)
    assert (utc.policy, utc.kind) == ("cbp-2024-11", "conversation")


def test_delivery_before_the_first_era_is_pending() -> None:
    """Eras start on 2022-02-01: an earlier charge time is not priced by any policy."""
    evaluation = run([delivered("w1", ts("2022-01-31T23:59"), MARKETING)])
    assert evaluation.units == ()
    assert [p.wamid for p in evaluation.pending] == ["w1"]


@pytest.mark.parametrize(
    ("instant", "zone", "month"),
    [
        ("2023-11-30T23:30", "UTC", "2023-11"),
        ("2023-11-30T23:30", "Asia/Kolkata", "2023-12"),
        ("2023-12-01T01:00", "America/Sao_Paulo", "2023-11"),
        ("2023-12-01T01:00", "UTC", "2023-12"),
    ],
)
def test_billing_month_is_the_local_month_of_the_charge_time(
    instant: str, zone: str, month: str
) -> None:
    """Billing month: the calendar month of the charge time in the WABA's time zone."""
    assert local_month(ts(instant), ZoneInfo(zone)) == month


def test_a_conversation_keeps_the_policy_of_its_opening_across_an_era_boundary() -> None:
    """The era is chosen by the charge time of the unit: a service conversation opened on
    2024-10-31 is a cbp-2023 conversation (in the allowance), and free-form messages on
    2024-11-01 inside it open nothing."""
    opened = ts("2024-10-31T20:00")
    events = [inbound(opened - H), reply("w1", opened), reply("w2", ts("2024-11-01T10:00"))]
    unit = only(events)
    assert (unit.policy, unit.bucket, unit.free_reason) == ("cbp-2023", WABA_ALLOWANCE, None)


def test_a_cbp_2022_conversation_open_at_the_2023_switch_covers_templates_until_it_expires() -> (
    None
):
    """Choice (the rule book is silent): as with the CBP->PMP switch, a conversation still open
    after 2023-06-01 keeps covering what its own era let it cover (every message) until it
    expires; then the cbp-2023 categories apply."""
    opened = ts("2023-05-31T20:00")
    events = [
        inbound(opened - H),
        delivered("w1", opened),  # user_initiated, until 2023-06-01T20:00
        delivered("w2", ts("2023-06-01T10:00"), MARKETING),
        delivered("w3", ts("2023-06-01T20:00"), MARKETING),
    ]
    assert [(u.wamid, u.policy, u.category) for u in units(events)] == [
        ("w1", "cbp-2022", "user_initiated"),
        ("w3", "cbp-2023", MARKETING),
    ]


def test_decisions_use_event_time_not_arrival_order() -> None:
    """A status can precede the inbound message that opened the CSW: decisions use event
    timestamps, never arrival time."""
    t0 = ERA["cbp-2022"]
    arrived = [delivered("w1", t0 + H), inbound(t0)]  # the reply's status arrived first
    assert only(arrived).category == "user_initiated"

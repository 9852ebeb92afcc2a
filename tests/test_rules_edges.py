"""Rule book section 6: the decisions for the edges."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest

from processor.core.events import Event
from processor.core.model import UNEXPECTED_NEW
from processor.core.policies import (
    AUTH_INTL,
    AUTHENTICATION,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    FREE_SERVICE,
    MARKETING,
    PHONE_ALLOWANCE,
    REFERRAL,
    SERVICE,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
)
from processor.core.quote import bucket_scope
from tests.rules_helpers import (
    CBP_ERAS,
    DAY,
    ERA,
    PAIR,
    PMP_ERAS,
    H,
    delivered,
    failed,
    inbound,
    only,
    read,
    reply,
    sent,
    summary,
    ts,
    units,
)

UTC = ZoneInfo("UTC")

# -- one record per unit, charged or free ------------------------------------------------------


def conversation_in_allowance(t0: int) -> list[Event]:
    return [inbound(t0), reply("w1", t0 + H), reply("w2", t0 + 2 * H), reply("w3", t0 + 3 * H)]


def fep_conversation(t0: int) -> list[Event]:
    return [inbound(t0, referral=True), *[delivered(f"w{n}", t0 + n * H) for n in (1, 2, 3)]]


SCENARIOS: list[tuple[str, Callable[[int], list[Event]], list[tuple[str | None, str | None]]]] = [
    # era, events, the (free_reason, bucket) of every unit
    ("cbp-2023", conversation_in_allowance, [(None, WABA_ALLOWANCE)]),
    ("cbp-2024-11", conversation_in_allowance, [(FREE_SERVICE, None)]),
    ("cbp-2023", fep_conversation, [(FREE_ENTRY_POINT, None)]),
    ("pmp-2025-07", fep_conversation, [(FREE_ENTRY_POINT, None)] * 3),
    ("pmp-2025-07", conversation_in_allowance, [(FREE_CUSTOMER_SERVICE, None)] * 3),
    ("pmp-2026-10", conversation_in_allowance, [(None, PHONE_ALLOWANCE)] * 3),
]


@pytest.mark.parametrize(
    ("era", "scenario", "expected"),
    SCENARIOS,
    ids=[f"{era}-{scenario.__name__}" for era, scenario, _ in SCENARIOS],
)
def test_one_record_per_unit_charged_or_free(
    era: str,
    scenario: Callable[[int], list[Event]],
    expected: list[tuple[str | None, str | None]],
) -> None:
    """Every CBP conversation (free ones too) and every delivered PMP message (free ones too)
    gets exactly one record."""
    found = units(scenario(ERA[era]))
    assert [(u.free_reason, u.bucket) for u in found] == expected
    assert len({u.record_id for u in found}) == len(found)


# -- free_reason vocabulary --------------------------------------------------------------------


def message(era: str, category: str, user_wrote: str) -> list[Event]:
    """One delivered message an hour after a user message (``user_wrote``: "referral",
    "recently" or "long-ago")."""
    t0 = ERA[era]
    wrote = t0 - 30 * H if user_wrote == "long-ago" else t0
    return [inbound(wrote, referral=user_wrote == "referral"), delivered("w", t0 + H, category)]


REASONS = [
    ("cbp-2023", MARKETING, "long-ago", None),
    ("cbp-2024-11", SERVICE, "recently", FREE_SERVICE),
    ("cbp-2023", MARKETING, "referral", FREE_ENTRY_POINT),
    ("pmp-2025-07", SERVICE, "recently", FREE_CUSTOMER_SERVICE),
    ("pmp-2025-07", UTILITY, "recently", FREE_CUSTOMER_SERVICE),
    ("pmp-2025-07", UTILITY, "long-ago", None),
    ("pmp-2026-10", SERVICE, "recently", None),
    ("pmp-2026-10", UTILITY, "referral", FREE_ENTRY_POINT),
]


@pytest.mark.parametrize(
    ("era", "category", "user_wrote", "free_reason"),
    REASONS,
    ids=[f"{e}-{c}-user-wrote-{w}-{r or 'owed'}" for e, c, w, r in REASONS],
)
def test_free_reason_vocabulary(
    era: str, category: str, user_wrote: str, free_reason: str | None
) -> None:
    """free_reason: free_entry_point (FEP), free_customer_service (PMP non-template, or utility
    in the CSW where free), free_service (cbp-2024-11 service), null when money is owed;
    free_tier is the allowance's, set by the storage layer, never by the model."""
    unit = only(message(era, category, user_wrote))
    assert (unit.policy, unit.free_reason) == (era, free_reason)


# -- FEP units ---------------------------------------------------------------------------------


@pytest.mark.parametrize("era", list(ERA))
def test_fep_units_have_category_referral_conversion_in_every_era(era: str) -> None:
    """FEP units have category referral_conversion in every era, and are free."""
    found = units(fep_conversation(ERA[era]))
    assert {(u.category, u.free_reason, u.policy) for u in found} == {
        (REFERRAL, FREE_ENTRY_POINT, era)
    }


@pytest.mark.parametrize(
    ("era", "count", "kind"),
    [(e, 1, "conversation") for e in CBP_ERAS] + [(e, 3, "message") for e in PMP_ERAS],
)
def test_fep_is_one_unit_per_conversation_under_cbp_and_per_message_under_pmp(
    era: str, count: int, kind: str
) -> None:
    """One unit per FEP conversation under CBP, one per delivered message inside the window
    under PMP."""
    found = units(fep_conversation(ERA[era]))
    assert [u.kind for u in found] == [kind] * count


@pytest.mark.parametrize("era", list(ERA))
def test_fep_units_never_consume_a_free_allowance(era: str) -> None:
    """FEP units never consume a free allowance (also not the pmp-2026-10 service one)."""
    t0 = ERA[era]
    events = [inbound(t0, referral=True), reply("w1", t0 + H), reply("w2", t0 + 2 * H)]
    assert {u.bucket for u in units(events)} == {None}


# -- windows are half-open ---------------------------------------------------------------------


def conversation_window(end: int) -> tuple[list[Event], str]:
    t0 = ERA["cbp-2023"]
    return [delivered("w1", t0, MARKETING), delivered("probe", t0 + end, MARKETING)], "cbp-2023"


def fep_window(end: int) -> tuple[list[Event], str]:
    t0 = ERA["pmp-2025-07"]
    events = [inbound(t0, referral=True), delivered("w1", t0 + H, MARKETING)]
    return [*events, delivered("probe", t0 + H + end, MARKETING)], "pmp-2025-07"


def csw_window(end: int) -> tuple[list[Event], str]:
    t0 = ERA["pmp-2025-07"]
    return [inbound(t0), delivered("probe", t0 + end, UTILITY)], "pmp-2025-07"


def fep_reply_window(end: int) -> tuple[list[Event], str]:
    t0 = ERA["pmp-2025-07"]
    return [inbound(t0, referral=True), delivered("probe", t0 + end, MARKETING)], "pmp-2025-07"


def covered(events: list[Event]) -> bool:
    """Whether the probe message was covered by (or opened) the window under test."""
    found = units(events)
    probe = [u for u in found if u.wamid == "probe"]
    if not probe:
        return True  # joined the open conversation
    return probe[0].free_reason is not None


@pytest.mark.parametrize(
    ("window", "hours"),
    [
        pytest.param(conversation_window, 24, id="conversation-24h"),
        pytest.param(fep_window, 72, id="fep-72h"),
        pytest.param(csw_window, 24, id="csw-24h"),
        pytest.param(fep_reply_window, 24, id="fep-reply-within-24h"),
    ],
)
def test_windows_are_half_open(
    window: Callable[[int], tuple[list[Event], str]], hours: int
) -> None:
    """Windows are half-open, [t, t + 24h) and [t, t + 72h): a delivery exactly at the end is
    outside."""
    inside, _ = window(hours * H - 1)
    at_end, _ = window(hours * H)
    assert covered(inside)
    assert not covered(at_end)


# -- the first delivered message after an entry point ------------------------------------------


@pytest.mark.parametrize("era", ["cbp-2023", "pmp-2025-07"])
def test_first_business_message_after_an_entry_point_is_the_first_delivered_one(
    era: str,
) -> None:
    """Undelivered messages neither open nor close any window: the FEP starts at the first
    delivered reply, not at an earlier failed or only-sent one."""
    t0 = ERA[era]
    events = [
        inbound(t0, referral=True),
        failed("w1", t0 + H),
        sent("w2", t0 + 2 * H, MARKETING),
        delivered("w3", t0 + 3 * H),
        delivered("w4", t0 + 75 * H - 1, MARKETING),  # still inside [h3, h75)
    ]
    found = units(events)
    assert found[0].wamid == "w3"
    assert {u.category for u in found} == {REFERRAL}


def test_undelivered_reply_does_not_close_open_conversations() -> None:
    """A failed reply after an entry point does not open the FEP, so it closes nothing."""
    t0 = ERA["cbp-2023"]
    events = [
        delivered("w1", t0, MARKETING),
        inbound(t0 - 30 * H, referral=True),  # too old to arm anything at t0
        inbound(t0 + H, referral=True),
        failed("w2", t0 + 2 * H),
        delivered("w3", t0 + 26 * H, MARKETING),  # too late for an FEP: a new marketing one
    ]
    assert [(u.wamid, u.category) for u in units(events)] == [("w1", MARKETING), ("w3", MARKETING)]


# -- the lingering CBP utility conversation after 2025-07-01 -----------------------------------

OPENED = ts("2025-06-30T20:00")  # cbp-2024-11; open until 2025-07-01T20:00
SWITCHED = ts("2025-07-01T10:00")  # pmp-2025-07


@pytest.mark.parametrize("with_meta", [True, False], ids=["meta-cbp-fields", "derived"])
def test_lingering_cbp_utility_conversation_creates_no_record_for_utility_templates(
    with_meta: bool,
) -> None:
    """Utility templates it covers create no new record (they belong to the conversation
    already billed)."""
    meta = {"conv_id": "c-u", "model": "CBP"} if with_meta else {}
    events = [
        delivered("w1", OPENED, UTILITY, expires=OPENED + DAY, **meta),
        delivered("w2", SWITCHED, UTILITY, **meta),
        delivered("w3", OPENED + DAY - 1, UTILITY, **meta),
    ]
    unit = only(events)
    assert (unit.wamid, unit.policy, unit.discrepancy) == ("w1", "cbp-2024-11", None)


@pytest.mark.parametrize(
    ("category", "free_reason", "bucket"),
    [
        (MARKETING, None, None),
        (AUTHENTICATION, None, VOLUME_TIER),
        (SERVICE, FREE_CUSTOMER_SERVICE, None),
    ],
)
def test_other_messages_during_the_lingering_conversation_are_ordinary_pmp_messages(
    category: str, free_reason: str | None, bucket: str | None
) -> None:
    """Other messages are ordinary PMP messages."""
    events = [
        inbound(SWITCHED - H),
        delivered("w1", OPENED, UTILITY),
        delivered("w2", SWITCHED, category),
    ]
    second = units(events)[1]
    assert (second.policy, second.kind, second.category) == ("pmp-2025-07", "message", category)
    assert (second.free_reason, second.bucket) == (free_reason, bucket)


def test_utility_after_the_lingering_conversation_expires_is_a_pmp_message() -> None:
    """Once the conversation closes, PMP applies."""
    events = [delivered("w1", OPENED, UTILITY), delivered("w2", OPENED + DAY, UTILITY)]
    assert [(u.wamid, u.policy, u.bucket) for u in units(events)] == [
        ("w1", "cbp-2024-11", None),
        ("w2", "pmp-2025-07", VOLUME_TIER),
    ]


def test_only_a_utility_conversation_lingers() -> None:
    """A marketing conversation open across the switch does not cover marketing templates."""
    events = [delivered("w1", OPENED, MARKETING), delivered("w2", SWITCHED, MARKETING)]
    assert [u.policy for u in units(events)] == ["cbp-2024-11", "pmp-2025-07"]


def test_meta_showing_pmp_inside_the_lingering_conversation_wins_and_is_marked() -> None:
    """Meta's classification wins: a utility template Meta bills as PMP inside the lingering
    conversation is an ordinary PMP message, marked as a disagreement with the model."""
    events = [
        delivered("w1", OPENED, UTILITY),
        delivered("w2", SWITCHED, UTILITY, model="PMP", ptype="regular"),
    ]
    second = units(events)[1]
    assert (second.policy, second.discrepancy) == ("pmp-2025-07", UNEXPECTED_NEW)


# -- order of allowances and tiers -------------------------------------------------------------


def test_units_are_in_charge_time_order_whatever_the_arrival_order() -> None:
    """Units are numbered by (charge time, wamid) within their bucket; events arrive late, so a
    late unit takes its earlier place: the model gives the same units in charge-time order."""
    t0 = ERA["cbp-2023"]
    in_order = [inbound(t0), reply("a", t0 + H), reply("b", t0 + 30 * H)]
    late_first = [read("b", t0 + 31 * H, SERVICE), reply("b", t0 + 30 * H)]
    late = [*late_first, inbound(t0), reply("a", t0 + H)]
    assert units(late) == units(in_order)
    assert [(u.charge_time, u.wamid) for u in units(late)] == [(t0 + H, "a"), (t0 + 30 * H, "b")]


def test_a_late_delivery_moves_a_unit_to_its_true_charge_time() -> None:
    """Charge-time order is what counts: a late `delivered` earlier than the `read` seen first
    moves the unit back (the storage layer re-numbers and emits a correction)."""
    t0 = ERA["pmp-2026-10"]
    seen_first = [inbound(t0), read("w1", t0 + 9 * H, SERVICE)]
    before = only(seen_first)
    after = only([*seen_first, delivered("w1", t0 + H, SERVICE)])
    assert (before.charge_time, after.charge_time) == (t0 + 9 * H, t0 + H)
    assert before.record_id == after.record_id  # the same record, corrected
    assert before.signature() != after.signature()


# -- authentication_international and pmp-2026-10 service ---------------------------------------


def test_authentication_international_is_its_own_category_for_rates_and_tiers() -> None:
    """authentication_international is its own category for rates and tiers."""
    t0 = ERA["pmp-2025-07"]
    found = units([delivered("w1", t0, AUTHENTICATION), delivered("w2", t0 + H, AUTH_INTL)])
    scopes = [bucket_scope(PAIR, u, UTC) for u in found]
    assert scopes == [
        (VOLUME_TIER, AUTHENTICATION, "2025-09"),
        (VOLUME_TIER, AUTH_INTL, "2025-09"),
    ]


def test_authentication_international_opens_its_own_cbp_conversation() -> None:
    """As its own category, it does not join an open authentication conversation."""
    t0 = ERA["cbp-2024-11"]
    found = units([delivered("w1", t0, AUTHENTICATION), delivered("w2", t0 + H, AUTH_INTL)])
    assert [u.category for u in found] == [AUTHENTICATION, AUTH_INTL]


def test_pmp_2026_service_beyond_the_allowance_is_charged_without_tiers() -> None:
    """pmp-2026-10 service beyond the allowance is charged at the service rate, without tiers:
    it enters the business number's allowance bucket, never a volume tier."""
    t0 = ERA["pmp-2026-10"]
    events = [inbound(t0), *[reply(f"w{n}", t0 + n) for n in range(1, 6)]]
    found = units(events)
    assert summary(found) == [(f"w{n}", SERVICE, None, PHONE_ALLOWANCE) for n in range(1, 6)]
    assert {bucket_scope(PAIR, u, UTC) for u in found} == {
        (PHONE_ALLOWANCE, PAIR.phone_number_id, "2026-11")
    }

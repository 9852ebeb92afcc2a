"""Rule book section 5: seed statements that must hold."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from processor.core.policies import (
    BUSINESS_INITIATED,
    PHONE_ALLOWANCE,
    SERVICE,
    USER_INITIATED,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
)
from processor.core.quote import bucket_scope
from tests.rules_helpers import (
    BOOK,
    DAY,
    ERA,
    PAIR,
    H,
    delivered,
    inbound,
    only,
    reply,
    run,
    ts,
    units,
)

UTC = ZoneInfo("UTC")

ALL_ERAS = list(ERA)


@pytest.mark.parametrize("era", ALL_ERAS)
def test_a_user_message_never_answered_costs_nothing(era: str) -> None:
    """A user message that the business never answers costs nothing (spam costs nothing
    unless you reply)."""
    t0 = ERA[era]
    evaluation = run([inbound(t0), inbound(t0 + H, referral=True), inbound(t0 + 3 * DAY)])
    assert (evaluation.units, evaluation.pending) == ((), ())


@pytest.mark.parametrize(
    ("era", "category"),
    [
        ("cbp-2022", USER_INITIATED),
        ("cbp-2023", SERVICE),
        ("cbp-2024-11", SERVICE),
        ("pmp-2025-07", SERVICE),
        ("pmp-2026-10", SERVICE),
    ],
)
def test_an_automatic_reply_is_a_reply_like_any_other(era: str, category: str) -> None:
    """An automatic reply is a reply and opens a conversation like any other (one second after
    the user's message)."""
    t0 = ERA[era]
    unit = only([inbound(t0), reply("auto", t0 + 1)])
    assert (unit.wamid, unit.category, unit.charge_time) == ("auto", category, t0 + 1)


@pytest.mark.parametrize(
    ("era", "category"),
    [
        ("cbp-2022", BUSINESS_INITIATED),
        ("cbp-2023", UTILITY),
        ("cbp-2024-11", UTILITY),
        ("pmp-2025-07", UTILITY),
        ("pmp-2026-10", UTILITY),
    ],
)
def test_a_reply_after_24h_is_charged_as_a_template(era: str, category: str) -> None:
    """A reply more than 24h after the user's message needs a template, and is charged as a
    business-initiated (or template-category) conversation."""
    t0 = ERA[era]
    pricing = {} if era == "cbp-2022" else {"category": UTILITY}
    unit = only([inbound(t0), delivered("late", t0 + 25 * H, **pricing)])
    assert (unit.category, unit.free_reason) == (category, None)


@pytest.mark.parametrize("era", ["cbp-2022", "cbp-2023", "cbp-2024-11"])
def test_two_conversations_a_week_apart_are_two_charges(era: str) -> None:
    """Two conversations with the same user a week apart are two charges."""
    t0 = ERA[era]
    events = [delivered("w1", t0, UTILITY), delivered("w2", t0 + 7 * DAY, UTILITY)]
    if era == "cbp-2022":
        events = [delivered("w1", t0), delivered("w2", t0 + 7 * DAY)]
    assert [u.wamid for u in units(events)] == ["w1", "w2"]


@pytest.mark.parametrize("era", ["cbp-2022", "cbp-2023", "cbp-2024-11"])
def test_messages_inside_one_24h_conversation_are_one_charge(era: str) -> None:
    """Messages inside one 24h conversation are one charge."""
    t0 = ERA[era]
    events = [inbound(t0)] + [reply(f"w{n}", t0 + n * H) for n in range(1, 24)]
    assert [u.wamid for u in units(events)] == ["w1"]


@pytest.mark.parametrize("era", ["cbp-2022", "cbp-2023", "cbp-2024-11"])
def test_the_conversation_is_fixed_from_its_first_delivery(era: str) -> None:
    """The 24h conversation is fixed from the first delivered business message; later
    messages (and later user messages) do not extend it."""
    t0 = ERA[era]
    events = [
        inbound(t0),
        reply("w1", t0 + H),  # opens [h1, h25)
        inbound(t0 + 20 * H),  # moves the CSW to h44, not the conversation
        reply("w2", t0 + 24 * H),
        reply("w3", t0 + 25 * H),  # a new conversation
    ]
    found = units(events)
    assert [(u.wamid, u.expires_at) for u in found] == [
        ("w1", t0 + 25 * H),
        ("w3", t0 + 49 * H),
    ]


def test_the_csw_by_contrast_moves_with_every_user_message() -> None:
    """The CSW, by contrast, moves with every user message."""
    t0 = ERA["pmp-2025-07"]
    events = [inbound(t0), inbound(t0 + 20 * H), delivered("w1", t0 + 43 * H, UTILITY)]
    assert only(events).bucket is None  # free in the CSW that the second message moved


# -- free allowances renew each month ---------------------------------------------------------


@pytest.mark.parametrize(
    ("months", "category", "bucket", "scope"),
    [
        (("2022-09", "2022-10"), None, WABA_ALLOWANCE, PAIR.waba_id),
        (("2023-11", "2023-12"), SERVICE, WABA_ALLOWANCE, PAIR.waba_id),
        (("2026-11", "2026-12"), SERVICE, PHONE_ALLOWANCE, PAIR.phone_number_id),
    ],
    ids=["cbp-2022", "cbp-2023", "pmp-2026-10"],
)
def test_free_allowances_renew_each_month_and_do_not_accumulate(
    months: tuple[str, str], category: str | None, bucket: str, scope: str
) -> None:
    """Free allowances renew each month and do not accumulate: units of two months enter two
    buckets, each with the policy's full monthly limit."""
    boundary = ts(f"{months[1]}-01T00:00")
    pricing = {"category": category} if category else {}
    events = [
        inbound(boundary - 2 * H),
        delivered("w1", boundary - H, **pricing),
        inbound(boundary + 30 * H),
        delivered("w2", boundary + 31 * H, **pricing),
    ]
    found = units(events)
    scopes = [bucket_scope(PAIR, u, UTC) for u in found]
    assert scopes == [(bucket, scope, months[0]), (bucket, scope, months[1])]
    allowances = [BOOK.by_id(u.policy).allowance_for(u.category) for u in found]
    assert [a.limit if a else None for a in allowances] == [1_000, 1_000]


def test_allowance_months_follow_the_wabas_time_zone() -> None:
    """Allowances renew at midnight of the WABA's time zone, not UTC."""
    tz = ZoneInfo("America/Sao_Paulo")
    t = ts("2023-12-01T01:00")  # still November in Sao Paulo
    unit = only([inbound(t - H), reply("w1", t)], tz)
    assert bucket_scope(PAIR, unit, tz) == (WABA_ALLOWANCE, PAIR.waba_id, "2023-11")


def test_volume_tier_scope_names_category_and_month() -> None:
    """Tiers are per portfolio x market x category x month: the model gives category and
    month; the storage layer adds portfolio and market."""
    t0 = ERA["pmp-2025-07"]
    unit = only([delivered("w1", t0, UTILITY)])
    assert bucket_scope(PAIR, unit, UTC) == (VOLUME_TIER, UTILITY, "2025-09")

"""Rule book 2.2, ``cbp-2023``: 24h conversations in four categories, at most one per category."""

from __future__ import annotations

import pytest

from processor.core.events import Event
from processor.core.model import DERIVED, META
from processor.core.policies import (
    AUTH_INTL,
    AUTHENTICATION,
    FREE_ENTRY_POINT,
    MARKETING,
    REFERRAL,
    SERVICE,
    UTILITY,
    WABA_ALLOWANCE,
)
from tests.rules_helpers import (
    ERA,
    H,
    delivered,
    inbound,
    only,
    reply,
    summary,
    units,
)

T0 = ERA["cbp-2023"]


@pytest.mark.parametrize("with_meta_ids", [True, False], ids=["meta-ids", "derived"])
def test_metas_worked_example_gives_two_conversations(with_meta_ids: bool) -> None:
    """Marketing at h0 opens marketing; utility at h4 opens utility; another utility at h10
    opens nothing; a free-form reply at h12 opens nothing."""

    def ids(conv: str) -> dict[str, object]:
        return {"conv_id": conv} if with_meta_ids else {}

    events = [
        inbound(T0 + 11 * H),  # the user wrote, so that a free-form reply may be sent
        delivered("w-mkt", T0, MARKETING, **ids("c-mkt")),
        delivered("w-utl1", T0 + 4 * H, UTILITY, **ids("c-utl")),
        delivered("w-utl2", T0 + 10 * H, UTILITY, **ids("c-utl")),
        reply("w-free", T0 + 12 * H, **ids("c-mkt")),
    ]
    found = units(events)
    assert summary(found) == [
        ("w-mkt", MARKETING, None, None),
        ("w-utl1", UTILITY, None, None),
    ]
    assert [(u.charge_time, u.expires_at) for u in found] == [
        (T0, T0 + 24 * H),
        (T0 + 4 * H, T0 + 28 * H),
    ]
    assert {u.source for u in found} == {META if with_meta_ids else DERIVED}
    assert {u.discrepancy for u in found} == {None}


@pytest.mark.parametrize("category", [MARKETING, UTILITY, AUTHENTICATION, AUTH_INTL])
def test_template_opens_a_conversation_of_its_category_when_none_is_open(category: str) -> None:
    """A template of category C delivered at t opens a C-conversation for [t, t + 24h)."""
    unit = only([delivered("w1", T0, category)])
    assert (unit.kind, unit.category, unit.charge_time, unit.expires_at) == (
        "conversation",
        category,
        T0,
        T0 + 24 * H,
    )


@pytest.mark.parametrize(
    ("second_at", "opens"),
    [
        pytest.param(H, False, id="inside-joins"),
        pytest.param(24 * H - 1, False, id="last-second-joins"),
        pytest.param(24 * H, True, id="at-expiry-opens-new"),
    ],
)
def test_template_joins_an_open_conversation_of_its_category(second_at: int, opens: bool) -> None:
    """If a C-conversation is open at t, nothing opens (windows are half-open)."""
    found = units([delivered("w1", T0, UTILITY), delivered("w2", T0 + second_at, UTILITY)])
    assert [u.wamid for u in found] == (["w1", "w2"] if opens else ["w1"])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (MARKETING, UTILITY),
        (UTILITY, MARKETING),
        (MARKETING, AUTHENTICATION),
        (AUTHENTICATION, AUTH_INTL),
        (SERVICE, MARKETING),
    ],
    ids=lambda c: c,
)
def test_template_of_another_category_opens_an_additional_conversation(
    first: str, second: str
) -> None:
    """Several conversations may be open at once for (P, U), at most one per category."""
    events = [inbound(T0), delivered("w1", T0 + H, first), delivered("w2", T0 + 2 * H, second)]
    assert [(u.wamid, u.category) for u in units(events)] == [("w1", first), ("w2", second)]


@pytest.mark.parametrize("open_category", [MARKETING, UTILITY, AUTHENTICATION, SERVICE])
def test_non_template_message_joins_any_open_conversation(open_category: str) -> None:
    """A non-template message delivered at t: if any conversation is open at t, nothing
    opens."""
    events = [inbound(T0), delivered("w1", T0 + H, open_category), reply("w2", T0 + 2 * H)]
    assert [u.wamid for u in units(events)] == ["w1"]


def test_non_template_message_opens_a_service_conversation_when_nothing_is_open() -> None:
    """Otherwise a service conversation opens for [t, t + 24h)."""
    unit = only([inbound(T0), reply("w1", T0 + H)])
    assert (unit.category, unit.charge_time, unit.expires_at) == (SERVICE, T0 + H, T0 + 25 * H)


def test_service_conversation_opens_after_the_open_ones_expire() -> None:
    """The service conversation opens only when no conversation at all is open."""
    events = [
        delivered("w1", T0, MARKETING),
        inbound(T0 + 20 * H),
        reply("w2", T0 + 23 * H),  # inside marketing: nothing opens
        reply("w3", T0 + 24 * H),  # marketing expired: service opens
    ]
    assert [(u.wamid, u.category) for u in units(events)] == [("w1", MARKETING), ("w3", SERVICE)]


@pytest.mark.parametrize(
    ("category", "bucket"),
    [
        (SERVICE, WABA_ALLOWANCE),
        (MARKETING, None),
        (UTILITY, None),
        (AUTHENTICATION, None),
        (AUTH_INTL, None),
    ],
    ids=lambda v: str(v),
)
def test_only_service_conversations_enter_the_monthly_allowance(
    category: str, bucket: str | None
) -> None:
    """First 1,000 service conversations per WABA per month are free; marketing, utility and
    authentication never are."""
    unit = only([inbound(T0), delivered("w1", T0 + H, category)])
    assert (unit.free_reason, unit.bucket) == (None, bucket)


@pytest.mark.parametrize("fields", ["meta", "category-only", "none"])
def test_fep_closes_all_open_conversations_and_none_opens_while_it_lasts(fields: str) -> None:
    """FEP closes all open conversations; none opens while it lasts; it is free."""

    def fep(wamid: str, t: int, category: str = SERVICE) -> Event:
        if fields == "meta":  # Meta marks every message of the window as referral_conversion
            return delivered(wamid, t, REFERRAL, conv_id="fep-1")
        return delivered(wamid, t, category if fields == "category-only" else None)

    events = [
        delivered("w1", T0, MARKETING),
        delivered("w2", T0 + H, UTILITY),
        inbound(T0 + 2 * H, referral=True),
        fep("w3", T0 + 3 * H),  # the reply opens the FEP [h3, h75)
        fep("w4", T0 + 4 * H, UTILITY),  # utility was open, but the FEP closed it
        fep("w5", T0 + 40 * H, AUTHENTICATION),
        fep("w6", T0 + 75 * H - 1, MARKETING),
        delivered("w7", T0 + 75 * H, MARKETING),  # FEP over: marketing opens again
    ]
    assert summary(units(events)) == [
        ("w1", MARKETING, None, None),
        ("w2", UTILITY, None, None),
        ("w3", REFERRAL, FREE_ENTRY_POINT, None),
        ("w7", MARKETING, None, None),
    ]


def test_after_fep_closed_them_templates_open_new_conversations() -> None:
    """Conversations closed by an FEP stay closed: after the FEP (here Meta's, ending early) a
    template opens a new one although the closed conversation's 24h have not passed."""
    events = [
        delivered("w1", T0, UTILITY),
        inbound(T0 + H, referral=True),
        delivered("w2", T0 + 2 * H, REFERRAL, conv_id="fep-1", expires=T0 + 12 * H),
        delivered("w3", T0 + 13 * H, UTILITY),
    ]
    assert [(u.wamid, u.category) for u in units(events)] == [
        ("w1", UTILITY),
        ("w2", REFERRAL),
        ("w3", UTILITY),
    ]

"""Rule book 2.1, ``cbp-2022``: one 24h conversation at a time, user- or business-initiated."""

from __future__ import annotations

import pytest

from processor.core.model import CATEGORY_MISMATCH, DERIVED, META
from processor.core.policies import (
    BUSINESS_INITIATED,
    FREE_ENTRY_POINT,
    REFERRAL,
    USER_INITIATED,
    WABA_ALLOWANCE,
)
from tests.rules_helpers import ERA, H, delivered, inbound, only, summary, units

T0 = ERA["cbp-2022"]


@pytest.mark.parametrize(
    ("user_wrote_at", "delivered_at", "kind"),
    [
        pytest.param(None, 5 * H, BUSINESS_INITIATED, id="no-user-message-business-initiated"),
        pytest.param(0, 5 * H, USER_INITIATED, id="csw-open-user-initiated"),
        pytest.param(0, 24 * H - 1, USER_INITIATED, id="last-second-of-csw-user-initiated"),
        pytest.param(0, 24 * H, BUSINESS_INITIATED, id="csw-just-closed-business-initiated"),
        pytest.param(0, 30 * H, BUSINESS_INITIATED, id="late-reply-business-initiated"),
    ],
)
def test_conversation_kind_depends_on_the_csw_at_delivery(
    user_wrote_at: int | None, delivered_at: int, kind: str
) -> None:
    """Opened by a business message: user_initiated if U's CSW is open then, else
    business_initiated."""
    events = [delivered("w1", T0 + delivered_at)]
    if user_wrote_at is not None:
        events.append(inbound(T0 + user_wrote_at))
    unit = only(events)
    assert (unit.kind, unit.category, unit.policy) == ("conversation", kind, "cbp-2022")


def test_only_one_conversation_is_open_at_a_time() -> None:
    """One open conversation at a time per (P, U): a user message inside a business-initiated
    conversation does not open a user-initiated one."""
    events = [
        delivered("w1", T0),
        inbound(T0 + 2 * H),
        delivered("w2", T0 + 3 * H),
        delivered("w3", T0 + 10 * H),
    ]
    assert summary(units(events)) == [("w1", BUSINESS_INITIATED, None, WABA_ALLOWANCE)]


def test_conversation_lasts_24h_from_the_delivery_that_opened_it() -> None:
    """24h long from the delivery of the business message that opened it; [t, t + 24h)."""
    events = [
        delivered("w1", T0),
        delivered("w2", T0 + 24 * H - 1),
        delivered("w3", T0 + 24 * H),
    ]
    found = units(events)
    assert [u.wamid for u in found] == ["w1", "w3"]
    assert found[0].expires_at == T0 + 24 * H


def test_unlimited_messages_inside_a_conversation_cost_one_unit() -> None:
    """Unlimited messages inside it, at no further charge."""
    events = [inbound(T0)] + [delivered(f"w{n}", T0 + n * 60) for n in range(1, 40)]
    assert summary(units(events)) == [("w1", USER_INITIATED, None, WABA_ALLOWANCE)]


@pytest.mark.parametrize("kind", [USER_INITIATED, BUSINESS_INITIATED])
def test_both_kinds_enter_the_waba_allowance(kind: str) -> None:
    """First 1,000 conversations per WABA per billing month are free (both kinds)."""
    events = [delivered("w1", T0 + H)]
    if kind == USER_INITIATED:
        events.append(inbound(T0))
    unit = only(events)
    assert (unit.category, unit.free_reason, unit.bucket) == (kind, None, WABA_ALLOWANCE)


def test_fep_conversation_is_free_and_does_not_use_the_allowance() -> None:
    """FEP conversations are free anyway and do not use the allowance."""
    unit = only([inbound(T0, referral=True), delivered("w1", T0 + H)])
    assert (unit.category, unit.free_reason, unit.bucket) == (REFERRAL, FREE_ENTRY_POINT, None)
    assert unit.expires_at == T0 + H + 72 * H


def test_fep_replaces_the_open_conversation_and_nothing_opens_while_it_lasts() -> None:
    """FEP replaces any open conversation; no conversation opens while it lasts."""
    events = [
        delivered("w1", T0),  # business-initiated, would last until T0 + 24h
        inbound(T0 + 2 * H, referral=True),
        delivered("w2", T0 + 3 * H),  # opens the FEP until T0 + 75h
        delivered("w3", T0 + 30 * H),
        delivered("w4", T0 + 75 * H - 1),
        delivered("w5", T0 + 75 * H),  # FEP over: a new conversation
    ]
    assert summary(units(events)) == [
        ("w1", BUSINESS_INITIATED, None, WABA_ALLOWANCE),
        ("w2", REFERRAL, FREE_ENTRY_POINT, None),
        ("w5", BUSINESS_INITIATED, None, WABA_ALLOWANCE),
    ]


def test_metas_initiator_category_wins_over_the_model() -> None:
    """Meta's classification wins when present; a disagreement is marked with a reason."""
    events = [inbound(T0), delivered("w1", T0 + H, BUSINESS_INITIATED)]
    unit = only(events)
    assert (unit.category, unit.discrepancy) == (BUSINESS_INITIATED, CATEGORY_MISMATCH)


@pytest.mark.parametrize(
    ("conv_id", "discrepancy"),
    [
        pytest.param(None, None, id="template-category-only"),
        pytest.param("c1", CATEGORY_MISMATCH, id="meta-conversation-with-foreign-category"),
    ],
)
def test_a_category_foreign_to_the_era_gives_way_to_the_models_kind(
    conv_id: str | None, discrepancy: str | None
) -> None:
    """cbp-2022 conversations are user_initiated or business_initiated; a template's own
    category (marketing) does not change that, and from Meta it is a disagreement."""
    unit = only([inbound(T0), delivered("w1", T0 + H, "marketing", conv_id=conv_id)])
    assert (unit.category, unit.discrepancy) == (USER_INITIATED, discrepancy)


def test_without_metas_pricing_the_kind_is_derived_from_the_csw() -> None:
    """Choice: under cbp-2022 the kind follows from the CSW alone, so a delivery without
    pricing is judged at once (source derived) instead of waiting as pending."""
    unit = only([inbound(T0), delivered("w1", T0 + H)])
    assert (unit.category, unit.source) == (USER_INITIATED, DERIVED)


def test_metas_conversation_id_makes_the_unit_metas() -> None:
    """conversation.id identifies the CBP conversation (source meta)."""
    unit = only([inbound(T0 - H), delivered("w1", T0, USER_INITIATED, conv_id="c1")])
    assert unit.discrepancy is None
    assert (unit.source, unit.meta_conversation_id) == (META, "c1")

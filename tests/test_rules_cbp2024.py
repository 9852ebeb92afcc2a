"""Rule book 2.3, ``cbp-2024-11``: as ``cbp-2023``, but every service conversation is free."""

from __future__ import annotations

import pytest

from processor.core.policies import (
    AUTH_INTL,
    AUTHENTICATION,
    FREE_ENTRY_POINT,
    FREE_SERVICE,
    MARKETING,
    REFERRAL,
    SERVICE,
    UTILITY,
)
from tests.rules_helpers import ERA, H, delivered, inbound, only, reply, summary, units

T0 = ERA["cbp-2024-11"]


def test_service_conversation_is_free_without_an_allowance() -> None:
    """Every service conversation is free (no allowance needed): free_service, no bucket."""
    unit = only([inbound(T0), reply("w1", T0 + H)])
    assert (unit.policy, unit.category, unit.free_reason, unit.bucket) == (
        "cbp-2024-11",
        SERVICE,
        FREE_SERVICE,
        None,
    )


@pytest.mark.parametrize("category", [MARKETING, UTILITY, AUTHENTICATION, AUTH_INTL])
def test_template_conversations_are_charged_as_under_cbp2023(category: str) -> None:
    """As cbp-2023: marketing, utility and authentication conversations are charged."""
    unit = only([inbound(T0), delivered("w1", T0 + H, category)])
    assert (unit.category, unit.free_reason, unit.bucket) == (category, None, None)


def test_metas_worked_example_holds_as_under_cbp2023() -> None:
    """As cbp-2023: marketing h0, utility h4, utility h10, free-form h12 -> two conversations."""
    events = [
        inbound(T0 + 11 * H),
        delivered("w1", T0, MARKETING),
        delivered("w2", T0 + 4 * H, UTILITY),
        delivered("w3", T0 + 10 * H, UTILITY),
        reply("w4", T0 + 12 * H),
    ]
    assert [u.wamid for u in units(events)] == ["w1", "w2"]


def test_free_service_conversation_still_covers_free_form_messages_for_24h() -> None:
    """Opening rules are unchanged: free-form messages inside the service conversation open
    nothing, and a template still opens its own category."""
    events = [
        inbound(T0),
        reply("w1", T0 + H),
        reply("w2", T0 + 5 * H),
        delivered("w3", T0 + 6 * H, UTILITY),
    ]
    assert summary(units(events)) == [
        ("w1", SERVICE, FREE_SERVICE, None),
        ("w3", UTILITY, None, None),
    ]


def test_fep_conversation_is_free_entry_point_not_free_service() -> None:
    """FEP as in cbp-2023: free, with its own reason."""
    unit = only([inbound(T0, referral=True), delivered("w1", T0 + H)])
    assert (unit.category, unit.free_reason, unit.bucket) == (REFERRAL, FREE_ENTRY_POINT, None)

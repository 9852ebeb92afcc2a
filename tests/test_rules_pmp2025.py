"""Rule book 2.4, ``pmp-2025-07``: each delivered message is judged on its own."""

from __future__ import annotations

import pytest

from processor.core.policies import (
    AUTH_INTL,
    AUTHENTICATION,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    MARKETING,
    MARKETING_LITE,
    REFERRAL,
    SERVICE,
    UTILITY,
    VOLUME_TIER,
)
from tests.rules_helpers import DAY, ERA, H, delivered, inbound, only, summary, ts, units

T0 = ERA["pmp-2025-07"]


def test_each_delivered_message_is_its_own_unit() -> None:
    """There are no conversations to count: marketing + two utility = three units."""
    events = [
        delivered("w1", T0, MARKETING),
        delivered("w2", T0 + H, UTILITY),
        delivered("w3", T0 + 2 * H, UTILITY),
    ]
    found = units(events)
    assert [(u.wamid, u.kind, u.expires_at) for u in found] == [
        ("w1", "message", None),
        ("w2", "message", None),
        ("w3", "message", None),
    ]
    assert {u.policy for u in found} == {"pmp-2025-07"}


CHARGES = [
    # category, delivered inside an open CSW?, free_reason, bucket
    (MARKETING, False, None, None),
    (MARKETING, True, None, None),
    (MARKETING_LITE, False, None, None),
    (MARKETING_LITE, True, None, None),
    (AUTHENTICATION, False, None, VOLUME_TIER),
    (AUTHENTICATION, True, None, VOLUME_TIER),
    (AUTH_INTL, False, None, VOLUME_TIER),
    (AUTH_INTL, True, None, VOLUME_TIER),
    (UTILITY, False, None, VOLUME_TIER),
    (UTILITY, True, FREE_CUSTOMER_SERVICE, None),
    (SERVICE, True, FREE_CUSTOMER_SERVICE, None),
]


@pytest.mark.parametrize(
    ("category", "in_csw", "free_reason", "bucket"),
    CHARGES,
    ids=[f"{c}-{'in' if w else 'outside'}-csw" for c, w, _, _ in CHARGES],
)
def test_what_is_charged_and_what_is_free(
    category: str, in_csw: bool, free_reason: str | None, bucket: str | None
) -> None:
    """Charged: marketing(_lite), authentication(_international), utility outside the CSW;
    free: non-template messages and utility inside the CSW; utility and authentication charges
    use volume tiers."""
    user_wrote = T0 if in_csw else T0 - 25 * H
    unit = only([inbound(user_wrote), delivered("w1", T0 + H, category)])
    assert (unit.category, unit.free_reason, unit.bucket) == (category, free_reason, bucket)


@pytest.mark.parametrize(
    "category", [MARKETING, MARKETING_LITE, AUTHENTICATION, AUTH_INTL, UTILITY, SERVICE]
)
def test_everything_delivered_inside_an_open_fep_is_free(category: str) -> None:
    """Free: everything delivered inside an open FEP (one unit per message)."""
    events = [
        inbound(T0, referral=True),
        delivered("w1", T0 + H, SERVICE),  # the reply that opens the FEP
        delivered("w2", T0 + 30 * H, category),
        delivered("w3", T0 + 70 * H, category),
    ]
    assert summary(units(events)) == [
        ("w1", REFERRAL, FREE_ENTRY_POINT, None),
        ("w2", REFERRAL, FREE_ENTRY_POINT, None),
        ("w3", REFERRAL, FREE_ENTRY_POINT, None),
    ]


def test_volume_tiers_count_only_charged_messages() -> None:
    """Tiers count only charged messages: utility inside the CSW or the FEP enters no tier."""
    events = [
        inbound(T0, referral=True),
        delivered("w1", T0 + H, UTILITY),  # FEP
        inbound(T0 + 100 * H),
        delivered("w2", T0 + 101 * H, UTILITY),  # CSW
        delivered("w3", T0 + 130 * H, UTILITY),  # charged
    ]
    assert [u.bucket for u in units(events)] == [None, None, VOLUME_TIER]


def test_lingering_cbp_utility_conversation_keeps_covering_utility_templates() -> None:
    """A utility conversation opened under cbp-2024-11 and still open after the switch keeps
    covering utility templates until it expires (Meta shows them as CBP)."""
    opened = ts("2025-06-30T20:00")
    events = [
        delivered("w1", opened, UTILITY, conv_id="c-u", model="CBP", expires=opened + DAY),
        delivered("w2", ts("2025-07-01T10:00"), UTILITY, conv_id="c-u", model="CBP"),
        delivered("w3", opened + DAY, UTILITY, model="PMP", ptype="regular"),
    ]
    found = units(events)
    assert [(u.wamid, u.policy, u.kind) for u in found] == [
        ("w1", "cbp-2024-11", "conversation"),
        ("w3", "pmp-2025-07", "message"),
    ]
    assert {u.discrepancy for u in found} == {None}

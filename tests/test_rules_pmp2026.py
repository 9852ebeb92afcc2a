"""Rule book 2.5, ``pmp-2026-10``: utility charged inside the CSW too; service above an
allowance per business number."""

from __future__ import annotations

import pytest

from processor.core.policies import (
    AUTH_INTL,
    AUTHENTICATION,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    MARKETING,
    MARKETING_LITE,
    PHONE_ALLOWANCE,
    REFERRAL,
    SERVICE,
    UTILITY,
    VOLUME_TIER,
)
from tests.rules_helpers import ERA, H, delivered, inbound, only, summary, units

T0 = ERA["pmp-2026-10"]

CHARGES = [
    # category, delivered inside an open CSW?, free_reason, bucket
    (MARKETING, False, None, None),
    (MARKETING, True, None, None),
    (MARKETING_LITE, True, None, None),
    (AUTHENTICATION, False, None, VOLUME_TIER),
    (AUTHENTICATION, True, None, VOLUME_TIER),
    (AUTH_INTL, True, None, VOLUME_TIER),
    (UTILITY, False, None, VOLUME_TIER),
    (UTILITY, True, None, VOLUME_TIER),
    (SERVICE, True, None, PHONE_ALLOWANCE),
]


@pytest.mark.parametrize(
    ("category", "in_csw", "free_reason", "bucket"),
    CHARGES,
    ids=[f"{c}-{'in' if w else 'outside'}-csw" for c, w, _, _ in CHARGES],
)
def test_what_is_charged_and_what_is_free(
    category: str, in_csw: bool, free_reason: str | None, bucket: str | None
) -> None:
    """As pmp-2025-07, except: utility is charged also inside the CSW; service messages are
    charged after the first 1,000 per business number per month (the allowance bucket), without
    tiers."""
    user_wrote = T0 if in_csw else T0 - 25 * H
    unit = only([inbound(user_wrote), delivered("w1", T0 + H, category)])
    assert (unit.category, unit.free_reason, unit.bucket) == (category, free_reason, bucket)


def test_utility_inside_the_csw_is_charged_although_meta_once_called_it_free() -> None:
    """Utility templates are charged also inside the CSW: the model says charged, so Meta's
    free_customer_service (the pmp-2025-07 answer) is kept but marked utility_in_csw_free
    (rule book 9.3)."""
    unit = only([inbound(T0), delivered("w1", T0 + H, UTILITY, ptype=FREE_CUSTOMER_SERVICE)])
    assert (unit.free_reason, unit.discrepancy) == (FREE_CUSTOMER_SERVICE, "utility_in_csw_free")


@pytest.mark.parametrize("ptype", [None, FREE_CUSTOMER_SERVICE, "regular"])
def test_service_always_enters_the_phone_allowance_whatever_meta_says(ptype: str | None) -> None:
    """Free allowances are the processor's own work: Meta's free_customer_service (inside the
    first 1,000) or regular (after) does not decide; the bucket numbering does."""
    unit = only([inbound(T0), delivered("w1", T0 + H, SERVICE, ptype=ptype, model="PMP")])
    assert (unit.free_reason, unit.bucket, unit.discrepancy) == (None, PHONE_ALLOWANCE, None)


def test_service_inside_an_fep_is_free_and_uses_no_allowance() -> None:
    """FEP units never consume a free allowance (also not the pmp-2026-10 service one)."""
    events = [
        inbound(T0, referral=True),
        delivered("w1", T0 + H, SERVICE),
        delivered("w2", T0 + 2 * H, SERVICE),
        delivered("w3", T0 + 3 * H, UTILITY),
    ]
    assert summary(units(events)) == [
        ("w1", REFERRAL, FREE_ENTRY_POINT, None),
        ("w2", REFERRAL, FREE_ENTRY_POINT, None),
        ("w3", REFERRAL, FREE_ENTRY_POINT, None),
    ]

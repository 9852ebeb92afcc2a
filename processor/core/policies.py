"""The pricing eras of ``billing-rules.md`` section 2, one policy object each.

A policy holds only dated parameters; the window model (``model.py``) reads them. A new era is
one more :class:`Policy` in :data:`POLICIES` and its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

HOUR = 3_600

# Unit of charge.
CONVERSATION, MESSAGE = "conversation", "message"
# How conversations are opened under CBP.
INITIATOR, CATEGORY = "initiator", "category"
# Buckets that number units by (charge time, wamid) within a month.
WABA_ALLOWANCE, PHONE_ALLOWANCE, VOLUME_TIER = "waba_allowance", "phone_allowance", "volume_tier"

MARKETING, MARKETING_LITE, UTILITY, SERVICE = "marketing", "marketing_lite", "utility", "service"
AUTHENTICATION, AUTH_INTL = "authentication", "authentication_international"
BUSINESS_INITIATED, USER_INITIATED = "business_initiated", "user_initiated"
REFERRAL = "referral_conversion"
# AI Providers policy (rule book 10): charged per delivered message, priced only from a
# configured rate (rates.csv rows of this category); unrated without one.
GENERAL_PURPOSE_AI = "general_purpose_ai"
TEMPLATE_CATEGORIES = frozenset({MARKETING, MARKETING_LITE, UTILITY, AUTHENTICATION, AUTH_INTL})
TIERED_CATEGORIES = frozenset({UTILITY, AUTHENTICATION, AUTH_INTL})
ALL_CATEGORIES = TEMPLATE_CATEGORIES | {
    SERVICE,
    BUSINESS_INITIATED,
    USER_INITIATED,
    REFERRAL,
    GENERAL_PURPOSE_AI,
}
# Group deliveries (rule book 7.2): priced at the 1:1 category's list rate, never tiered.
GROUP_MARKETING, GROUP_MARKETING_LITE = "group_marketing", "group_marketing_lite"
GROUP_UTILITY, GROUP_SERVICE = "group_utility", "group_service"
GROUP_RATED_AS = {
    GROUP_MARKETING: MARKETING,
    GROUP_MARKETING_LITE: MARKETING_LITE,
    GROUP_UTILITY: UTILITY,
    GROUP_SERVICE: SERVICE,
}

# free_reason vocabulary (rule book section 6).
FREE_TIER = "free_tier"
FREE_ENTRY_POINT = "free_entry_point"
FREE_CUSTOMER_SERVICE = "free_customer_service"
FREE_SERVICE = "free_service"

# ``pricing.type`` values Meta documents (rule book 9.3); any other takes the default branch
# (the unit is kept unrated and listed, never using an allowance).
REGULAR = "regular"
FREE_GROUP_CUSTOMER_SERVICE = "free_group_customer_service"
PRICING_TYPES = frozenset({REGULAR, FREE_CUSTOMER_SERVICE, FREE_ENTRY_POINT,
                           FREE_GROUP_CUSTOMER_SERVICE})  # fmt: skip
# Meta's types that mean "inside the business number's free service tier" (from 2026-10-01).
FREE_TIER_TYPES = frozenset({FREE_CUSTOMER_SERVICE, FREE_GROUP_CUSTOMER_SERVICE})


@dataclass(frozen=True)
class Allowance:
    """The first ``limit`` units of ``categories`` per ``scope`` and billing month are free."""

    scope: str  # WABA_ALLOWANCE | PHONE_ALLOWANCE
    limit: int
    categories: frozenset[str]


@dataclass(frozen=True)
class Policy:
    """One pricing era: its parameters, effective from ``starts`` (a date in the WABA's zone)."""

    id: str
    starts: date
    unit: str  # CONVERSATION | MESSAGE
    pricing_model: str  # "CBP" | "PMP"
    opening: str = CATEGORY  # CBP only: INITIATOR (2022) or CATEGORY (2023 on)
    csw_hours: int = 24
    conversation_hours: int = 24
    fep_hours: int = 72
    fep_reply_hours: int = 24
    allowance: Allowance | None = None
    free_categories: frozenset[str] = frozenset()  # CBP: conversations free by category
    utility_free_in_csw: bool = False  # PMP
    tiered_categories: frozenset[str] = frozenset()  # PMP: volume tiers apply
    categories: frozenset[str] = field(default_factory=frozenset)
    call_charge_time: str = "end"  # calls (rule book 8.1.9): "end" | "start" of the call
    charge_failed_connected_calls: bool = True  # 8.1.11: a FAILED call with a duration

    def allowance_for(self, category: str) -> Allowance | None:
        a = self.allowance
        return a if a is not None and category in a.categories else None


POLICIES: tuple[Policy, ...] = (
    Policy(
        id="cbp-2022",
        starts=date(2022, 2, 1),
        unit=CONVERSATION,
        pricing_model="CBP",
        opening=INITIATOR,
        allowance=Allowance(WABA_ALLOWANCE, 1_000, frozenset({BUSINESS_INITIATED, USER_INITIATED})),
        categories=frozenset({BUSINESS_INITIATED, USER_INITIATED}),
    ),
    Policy(
        id="cbp-2023",
        starts=date(2023, 6, 1),
        unit=CONVERSATION,
        pricing_model="CBP",
        allowance=Allowance(WABA_ALLOWANCE, 1_000, frozenset({SERVICE})),
        categories=frozenset({MARKETING, UTILITY, AUTHENTICATION, AUTH_INTL, SERVICE}),
    ),
    Policy(
        id="cbp-2024-11",
        starts=date(2024, 11, 1),
        unit=CONVERSATION,
        pricing_model="CBP",
        free_categories=frozenset({SERVICE}),
        categories=frozenset({MARKETING, UTILITY, AUTHENTICATION, AUTH_INTL, SERVICE}),
    ),
    Policy(
        id="pmp-2025-07",
        starts=date(2025, 7, 1),
        unit=MESSAGE,
        pricing_model="PMP",
        utility_free_in_csw=True,
        free_categories=frozenset({SERVICE}),
        tiered_categories=TIERED_CATEGORIES,
        categories=TEMPLATE_CATEGORIES | {SERVICE, GENERAL_PURPOSE_AI},
    ),
    Policy(
        id="pmp-2026-10",
        starts=date(2026, 10, 1),
        unit=MESSAGE,
        pricing_model="PMP",
        allowance=Allowance(PHONE_ALLOWANCE, 1_000, frozenset({SERVICE})),
        tiered_categories=TIERED_CATEGORIES,
        categories=TEMPLATE_CATEGORIES | {SERVICE, GENERAL_PURPOSE_AI},
    ),
)


class PolicyBook:
    """Chooses the policy in force at a charge time, in the WABA's time zone."""

    def __init__(self, policies: Sequence[Policy] = POLICIES) -> None:
        self.policies = tuple(sorted(policies, key=lambda p: p.starts))

    def at(self, timestamp: int, tz: ZoneInfo) -> Policy | None:
        """The policy for ``timestamp`` (Unix seconds), None before the first era."""
        day = datetime.fromtimestamp(timestamp, tz).date()
        chosen = None
        for policy in self.policies:
            if policy.starts <= day:
                chosen = policy
        return chosen

    def by_id(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)


def local_month(timestamp: int, tz: ZoneInfo) -> str:
    """The billing month ``YYYY-MM`` of ``timestamp`` in ``tz``."""
    return datetime.fromtimestamp(timestamp, tz).date().isoformat()[:7]  # strftime: slower

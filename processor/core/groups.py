"""Group messages (rule book section 7): one unit per participant a group message reaches.

A group is a pair of its own, (business number, ``group:<group_id>``), kept apart from every
1:1 pair. Its history holds the group's inbound messages, which keep the **group** customer
service window (any member's message opens it for the whole group; it never opens the
writer's 1:1 window, and 1:1 messages never open it), and the statuses of its outbound
messages: group-level ones (``sent``, ``failed``: no participant) under the wamid, and each
participant's under ``wamid|participant`` (``Status.history_key``).

Each participant that reaches ``delivered``/``read`` is one unit (a group delivery), at its own
charge time and rated at its own market. Meta's pricing on the participant's status wins over
the group-level ``sent`` pricing, which only fills in when the participant's status has none.
Group deliveries exist only under per-message pricing; group utility is never tiered (nor
accrues to tiers); from ``pmp-2026-10`` group service deliveries share the business number's
free service allowance with 1:1 service messages, numbered by (charge time, wamid,
participant).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from processor.core.events import DELIVERED, PLAYED, READ, Event, Pair, Status
from processor.core.history import MessageFacts, PairHistory
from processor.core.model import (
    DERIVED,
    META,
    UNEXPECTED_CHARGE,
    UNEXPECTED_FEP,
    UNEXPECTED_FREE,
    Pending,
    Unit,
    Walk,
    record_id,
)
from processor.core.policies import (
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    FREE_GROUP_CUSTOMER_SERVICE,
    FREE_TIER_TYPES,
    GROUP_MARKETING,
    GROUP_MARKETING_LITE,
    GROUP_RATED_AS,
    GROUP_SERVICE,
    MESSAGE,
    UTILITY,
    Policy,
    PolicyBook,
)

GROUP_PREFIX = "group:"
GROUP_ID = re.compile(r"[A-Za-z0-9_.+/=-]{1,256}")  # opaque, e.g. "Y2FwaV9ncm91cDox"
# Discrepancy codes of group deliveries (Meta's answer kept).
GROUP_MARKETING_FREE = "group_marketing_free_in_csw"
UTILITY_IN_CSW_FREE = "utility_in_csw_free"
MARKETING_LITE_SEEN = "group_marketing_lite_seen"
TOO_EARLY = "unexpected: group status before per-message pricing (2025-07-01)"
WITHOUT_PARTICIPANT = "bad payload: group status without participant"
# Meta's plain spellings on a group delivery mean the group category.
_GROUP_SPELLING = {plain: group for group, plain in GROUP_RATED_AS.items()}
_MARKETING = frozenset({GROUP_MARKETING, GROUP_MARKETING_LITE})
# Statuses that give a group delivery its charge time: they must name the participant.
CHARGED = frozenset({DELIVERED, READ, PLAYED})


def group_pair(waba_id: str, phone_number_id: str, group_id: str) -> Pair:
    """The pair that holds a group's windows and deliveries."""
    return Pair(waba_id, phone_number_id, GROUP_PREFIX + group_id)


def group_of(pair: Pair) -> str | None:
    """The group id of a group pair, None for a 1:1 pair."""
    user = pair.user_id
    return user[len(GROUP_PREFIX) :] if user.startswith(GROUP_PREFIX) else None


def group_category(category: str | None) -> str | None:
    """The ``group_*`` spelling of a group delivery's category. A category groups do not have
    (``authentication``, or one Meta adds) keeps it too, so that it is never priced as a 1:1
    category: the rate card has no row for it and the unit stays unrated (rule book 9.3)."""
    if category is None or category.startswith("group_"):
        return category
    return _GROUP_SPELLING.get(category, "group_" + category)


def group_message_category(category: str, template: bool) -> str:
    """The group category of a message to a group: a marketing or utility template (either
    spelling), or ``group_service`` for a free-form message. There are no authentication
    templates in groups (rule book 7.2.5)."""
    if not template:
        return GROUP_SERVICE
    name = group_category(category.strip().lower().replace("-", "_"))
    if name not in GROUP_RATED_AS or name == GROUP_SERVICE:
        raise ValueError(f"{category!r} is not a template category groups can receive")
    return name


def unexpected(event: Event, tz: ZoneInfo, book: PolicyBook) -> str | None:
    """Why a group status is refused (quarantined) before it is merged, or None.

    Group messages are priced per message only: a group status dated before the first
    per-message era is unexpected (rule book 7.2.7)."""
    if not isinstance(event, Status) or group_of(event.pair) is None:
        return None
    policy = book.at(event.timestamp, tz)
    return TOO_EARLY if policy is None or policy.unit != MESSAGE else None


def known_participants(history: PairHistory) -> list[str]:
    """The participants a group's history names (its deliveries' statuses), sorted."""
    return sorted({key.rpartition("|")[2] for key in history.outbound if "|" in key})


class GroupWalk(Walk):
    """The walk over a group pair's history: the group CSW, then one unit per delivery."""

    history: PairHistory

    def run(self, history: PairHistory, until: int | None = None) -> None:
        self.history = history
        super().run(history, until)

    def inbound(self, t: int, referral: bool) -> None:
        super().inbound(t, False)  # no free entry point in groups (rule book 7.2.6)

    def outbound(self, t: int, facts: MessageFacts) -> None:
        wamid, _, participant = facts.wamid.rpartition("|")
        if not wamid:  # a group-level status: it charges nothing
            return
        policy = self.book.at(t, self.tz)
        if policy is None or policy.unit != MESSAGE:
            self.pending.append(Pending(facts.wamid, t, TOO_EARLY))
            return
        category, ptype = self._meta(wamid, facts)
        if category is None:
            self.pending.append(Pending(facts.wamid, t, "category not known yet"))
            return
        free, bucket, discrepancy = self._judge(policy, t, category, ptype)
        if category == GROUP_MARKETING_LITE:  # only in Meta's analytics enum: note it (7.2.5)
            discrepancy = discrepancy or MARKETING_LITE_SEEN
        rid = record_id("gmsg", self.pair.phone_number_id, wamid, participant)
        self.members[facts.wamid] = rid
        self.units[rid] = Unit(
            record_id=rid,
            kind=MESSAGE,
            policy=policy.id,
            pricing_model=policy.pricing_model,
            category=category,
            charge_time=t,
            expires_at=None,
            wamid=wamid,
            meta_conversation_id=None,
            free_reason=free,
            bucket=bucket,
            source=META if ptype is not None else DERIVED,
            discrepancy=discrepancy,
            participant=participant,
            group_id=group_of(self.pair),
            # Meta's answer on a delivery in the number's allowance: it wins over the place
            # (rule book 9.3, applied where the place is known: pricing.lua)
            meta_in_tier=None if bucket is None or ptype is None else ptype in FREE_TIER_TYPES,
        )

    def _meta(self, wamid: str, facts: MessageFacts) -> tuple[str | None, str | None]:
        """Meta's (category, pricing type) of a delivery: the participant's own status first,
        else the group-level status of the message (rule book 7.5.2 and 7.5.5)."""
        if facts.category is not None or facts.pricing_type is not None:
            return group_category(facts.category), facts.pricing_type
        if wamid not in self.history.outbound:
            return None, None
        group_level = self.history.facts(wamid)
        return group_category(group_level.category), group_level.pricing_type

    def _judge(
        self, policy: Policy, t: int, category: str, ptype: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """Free reason, bucket and discrepancy of one delivery. The allowance is the
        processor's own work; otherwise Meta's ``pricing.type`` wins where it is given."""
        plain = GROUP_RATED_AS.get(category)
        allowance = policy.allowance_for(plain) if plain else None
        if allowance is not None:
            return None, allowance.scope, None
        in_csw = plain == UTILITY and policy.utility_free_in_csw and self.state.csw_open(t)
        model = FREE_CUSTOMER_SERVICE if plain in policy.free_categories or in_csw else None
        if ptype == FREE_ENTRY_POINT:
            return FREE_ENTRY_POINT, None, UNEXPECTED_FEP
        if ptype == "regular":
            return None, None, None if model is None else UNEXPECTED_CHARGE
        if ptype in (FREE_GROUP_CUSTOMER_SERVICE, FREE_CUSTOMER_SERVICE):
            return FREE_CUSTOMER_SERVICE, None, None if model else _free_code(policy, category)
        return model, None, None


def _free_code(policy: Policy, category: str) -> str:
    """Why Meta's free answer differs from the model's charge."""
    if category in _MARKETING:
        return GROUP_MARKETING_FREE
    if GROUP_RATED_AS.get(category) == UTILITY and not policy.utility_free_in_csw:
        return UTILITY_IN_CSW_FREE
    return UNEXPECTED_FREE

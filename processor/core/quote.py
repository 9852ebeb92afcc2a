"""What would delivering one more message cost? A pure what-if over the window model.

:func:`quote` adds a hypothetical delivered message to a copy of the pair's history and walks
it with exactly the rules of :mod:`processor.core.model`; the difference between the units
before and after is the answer. Nothing is changed. Allowances and tiers are numbered by the
storage layer, so the quote names the bucket the unit would enter (:func:`bucket_scope`) and
leaves "is any allowance left, which tier" to whoever holds the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from processor.core.events import DELIVERED, Pair, Pricing, Status
from processor.core.groups import group_message_category, group_of
from processor.core.history import PairHistory, category_name
from processor.core.model import Unit, Walk, walk
from processor.core.policies import (
    CONVERSATION,
    FREE_CUSTOMER_SERVICE,
    GROUP_RATED_AS,
    PHONE_ALLOWANCE,
    REFERRAL,
    SERVICE,
    TEMPLATE_CATEGORIES,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
    local_month,
)
from processor.core.windows import WalkState

# Why the message would (not) open a unit.
OPEN_CONVERSATION = "open_conversation"  # joins an open conversation that covers it
FEP_OPEN = "fep_open"  # inside an open free entry point window: free
FEP_OPENS = "fep_would_open"  # the first reply after an entry point: opens the FEP, free
CSW_OPEN = "csw_open"  # a non-template message inside the CSW, free where that is the rule
UTILITY_FREE_IN_CSW = "utility_free_in_csw"
NEW_CONVERSATION = "new_conversation"  # nothing open that covers it: a new conversation
PER_MESSAGE = "per_message_charge"  # PMP: the message is charged on its own
CSW_CLOSED = "csw_closed"  # a non-template message needs an open CSW: not allowed
NOT_PRICED = "not_priced"  # no policy prices it (before the first era, unknown category)

# A wamid no real message has, sorting after every one delivered in the same second.
QUOTE_WAMID = "\uffffquote"


@dataclass(frozen=True, slots=True)
class Quote:
    """The answer: whether the message may be sent, whether it opens a unit, and why."""

    allowed: bool
    reason: str
    opens: bool  # a new charge unit: a CBP conversation, or under PMP the message itself
    unit: Unit | None  # the unit it would open (record_id and wamid are hypothetical)
    joins: str | None  # the record id of the open unit it would belong to instead
    bucket_scope: tuple[str, str, str] | None  # (bucket, waba/phone/category, month)
    allowance_limit: int | None  # the allowance's monthly size, when it enters one
    affects: tuple[str, ...] = ()  # record ids of other units it would change (past `at`)

    @property
    def free_by_rule(self) -> bool:
        """Free whatever the counters say (FEP, CSW, free service, or no new unit)."""
        return self.unit is None or self.unit.free_reason is not None


def quote(
    pair: Pair,
    history: PairHistory,
    tz: ZoneInfo,
    book: PolicyBook,
    category: str,
    template: bool,
    at: int,
    participant: str | None = None,
) -> Quote:
    """Would delivering a message of ``category`` (a template, or a free-form message if not
    ``template``) to ``pair`` at ``at`` open a charge unit; which, why, into which bucket.
    For a group pair, ``participant`` names the member the delivery reaches."""
    if group_of(pair) is None:
        category = _message_category(category, template)
    else:
        category = group_message_category(category, template)
    state = walk(pair, history, tz, book, until=at + 1).state  # everything up to `at`
    if not template and not state.csw_open(at):
        return Quote(False, CSW_CLOSED, False, None, None, None, None)
    what_if = history.copy()
    delivery = Status(
        pair,
        QUOTE_WAMID,
        DELIVERED,
        at,
        pricing=Pricing(category=category),
        participant=participant,
    )
    what_if.merge(delivery)
    after = walk(pair, what_if, tz, book)
    rid = after.members.get(delivery.history_key)
    if rid is None:
        return Quote(True, NOT_PRICED, False, None, None, None, None)
    affects = _affected(walk(pair, history, tz, book), after, rid)
    unit = after.units.get(rid)
    if unit is None or unit.wamid != QUOTE_WAMID:
        reason = FEP_OPEN if _in_fep(state, at, rid) else OPEN_CONVERSATION
        return Quote(True, reason, False, None, rid, None, None, affects)
    rated_as = GROUP_RATED_AS.get(unit.category, unit.category)  # group_service: service
    allowance = book.by_id(unit.policy).allowance_for(rated_as)
    limit = allowance.limit if allowance and unit.bucket == allowance.scope else None
    scope = bucket_scope(pair, unit, tz)
    return Quote(True, _why(state, at, unit), True, unit, None, scope, limit, affects)


def bucket_scope(pair: Pair, unit: Unit, tz: ZoneInfo) -> tuple[str, str, str] | None:
    """The bucket ``unit`` is numbered in: allowance by WABA or business number and month;
    volume tier by category and month (the storage layer adds portfolio and market)."""
    month = local_month(unit.charge_time, tz)
    if unit.bucket == WABA_ALLOWANCE:
        return (WABA_ALLOWANCE, pair.waba_id, month)
    if unit.bucket == PHONE_ALLOWANCE:
        return (PHONE_ALLOWANCE, pair.phone_number_id, month)
    if unit.bucket == VOLUME_TIER:
        return (VOLUME_TIER, unit.category, month)
    return None


def _message_category(category: str, template: bool) -> str:
    name = category_name(category) or ""
    if not template:
        if name != SERVICE:
            raise ValueError(f"a non-template message is a service message, not {category!r}")
        return SERVICE
    if name not in TEMPLATE_CATEGORIES:
        raise ValueError(f"{category!r} is not a template category")
    return name


def _why(state: WalkState, at: int, unit: Unit) -> str:
    """Why the hypothetical message opens ``unit``."""
    if unit.category == REFERRAL:
        return FEP_OPEN if state.fep is not None and state.fep.covers(at) else FEP_OPENS
    if unit.kind == CONVERSATION:
        return NEW_CONVERSATION
    if unit.free_reason == FREE_CUSTOMER_SERVICE:
        utility = GROUP_RATED_AS.get(unit.category, unit.category) == UTILITY
        return UTILITY_FREE_IN_CSW if utility else CSW_OPEN
    return PER_MESSAGE


def _in_fep(state: WalkState, at: int, rid: str) -> bool:
    return state.fep is not None and state.fep.record_id == rid and state.fep.covers(at)


def _affected(before: Walk, after: Walk, own: str) -> tuple[str, ...]:
    """Units other than the message's own that the message would add, remove or change."""
    ids = (before.units.keys() | after.units.keys()) - {own}
    return tuple(sorted(i for i in ids if before.units.get(i) != after.units.get(i)))

"""The window model: a pair's history -> the charge units it produces.

The history is walked in event-time order (inbound before outbound at equal times, then by
wamid), keeping the customer service window (CSW), the free entry point window (FEP) and the
open conversations. Each delivered outbound message is judged by the policy in force at its
charge time. Meta's answer (``conversation.id``, ``pricing.category``, ``pricing.type``) wins
where present; the model's own answer fills the gaps (``source: derived``) and, where the two
disagree, the unit carries a ``discrepancy`` code. Under CBP Meta's answer is its conversation
(a category without a conversation id is only the template's own category); under PMP it is
``pricing.type``.

Choices where the rule book is silent (each also noted where it is made):
- cbp-2022 needs no category: the kind follows from the CSW, so nothing waits as pending;
- a cbp-2022 conversation open across 2023-06-01 keeps covering every message until it
  expires, as the CBP utility conversation does across 2025-07-01 (rule book 2.4);
- a conversation closed early by an FEP keeps its 24h ``expires_at`` (the record of what was
  opened), though it covers nothing after the FEP opens.

Because the walk is a function of the history, and the history is a set, the units are the
same for any arrival order of the same events.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from processor.core.events import Pair
from processor.core.history import SETTLED, MessageFacts, PairHistory
from processor.core.policies import (
    BUSINESS_INITIATED,
    CONVERSATION,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    FREE_SERVICE,
    FREE_TIER_TYPES,
    HOUR,
    INITIATOR,
    MARKETING_LITE,
    MESSAGE,
    PRICING_TYPES,
    REFERRAL,
    SERVICE,
    TEMPLATE_CATEGORIES,
    USER_INITIATED,
    UTILITY,
    VOLUME_TIER,
    Policy,
    PolicyBook,
)
from processor.core.windows import WalkState, Window

META, DERIVED = "meta", "derived"
INITIATOR_CATEGORIES = frozenset({USER_INITIATED, BUSINESS_INITIATED})

# Discrepancy codes (Meta's answer kept, the model's answer differed).
UNEXPECTED_NEW = "meta_opened_conversation_model_had_one_open"
UNEXPECTED_JOIN = "meta_joined_conversation_model_would_open_one"
CATEGORY_MISMATCH = "category_differs_from_model"
UNEXPECTED_FEP = "meta_free_entry_point_model_had_none"
MISSING_FEP = "model_free_entry_point_meta_had_none"
UNEXPECTED_FREE = "meta_free_model_charged"
UNEXPECTED_CHARGE = "meta_charged_model_free"
# From 2026-10-01 (rule book 9.3): Meta's free_customer_service on a utility template; Meta's
# free tier answer differing from the allowance place (marked where the place is known: the
# apply script, processor/core/pricing.py).
UTILITY_IN_CSW_FREE = "utility_in_csw_free"
SERVICE_ALLOWANCE_MISMATCH = "service_allowance_mismatch"


def record_id(*parts: str) -> str:
    """A short, stable id for a unit (80 bits of BLAKE2b over its identifying parts)."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class Unit:
    """One charge unit: a CBP conversation or a PMP message, charged or free."""

    record_id: str
    kind: str  # CONVERSATION | MESSAGE
    policy: str
    pricing_model: str
    category: str
    charge_time: int
    expires_at: int | None
    wamid: str  # the first message of the unit
    meta_conversation_id: str | None
    free_reason: str | None  # free by rule; None: owed, subject to its bucket
    bucket: str | None  # WABA_ALLOWANCE | PHONE_ALLOWANCE | VOLUME_TIER | None
    source: str
    discrepancy: str | None
    participant: str | None = None  # a group delivery: the participant (the record's user)
    group_id: str | None = None  # a group delivery: the group
    # Added with pmp-2026-10 (defaults keep the digests of units booked before them).
    meta_in_tier: bool | None = None  # Meta's answer: inside the allowance's free tier?
    pricing_subtype: str | None = None  # pricing.subtype verbatim, never read (9.2.6)
    unrated: bool = False  # an unknown pricing.type or category: kept, never priced (9.3)

    def signature(self) -> str:
        text = "\x1f".join(str(v) for v in asdict(self).values())
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivered message that cannot be judged yet (its category is not known)."""

    wamid: str
    charge_time: int
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    units: tuple[Unit, ...]
    pending: tuple[Pending, ...]


class Walk:
    """One pass over a pair's history; collects units and pending messages."""

    def __init__(self, pair: Pair, tz: ZoneInfo, book: PolicyBook, state: WalkState) -> None:
        self.pair, self.tz, self.book, self.state = pair, tz, book, state
        self.units: dict[str, Unit] = {}
        self.pending: list[Pending] = []
        self.members: dict[str, str] = {}  # wamid -> record id of the unit it belongs to

    # -- the walk ------------------------------------------------------------------------------

    def run(self, history: PairHistory, until: int | None = None) -> None:
        for t, kind, wamid in _moments(history):
            if until is not None and t >= until:
                break
            if kind == 0:
                self.inbound(t, bool(history.inbound[wamid][1]))
            else:
                self.outbound(t, history.facts(wamid))

    def inbound(self, t: int, referral: bool) -> None:
        policy = self.book.at(t, self.tz)
        csw_hours = policy.csw_hours if policy else 24
        self.state.csw_end = max(self.state.csw_end or 0, t + csw_hours * HOUR)
        if referral:
            self.state.armed_at = t

    def outbound(self, t: int, facts: MessageFacts) -> None:
        policy = self.book.at(t, self.tz)
        armed, self.state.armed_at = self.state.armed_at, None
        if policy is None:
            self.pending.append(Pending(facts.wamid, t, "charge time before the first era"))
            return
        model_fep = self._model_fep(policy, t, armed)
        meta_fep = _meta_says_fep(policy, facts)
        if meta_fep if meta_fep is not None else model_fep:
            self._entry_point(policy, t, facts, model_fep, meta_fep)
            return
        discrepancy = MISSING_FEP if model_fep else None
        if _needs_category(policy, facts) and facts.conv_id not in self.state.meta:
            self.pending.append(Pending(facts.wamid, t, "category not known yet"))
        elif policy.unit == CONVERSATION:
            self._conversation(policy, t, facts, discrepancy)
        else:
            self._message(policy, t, facts, discrepancy)

    # -- free entry points ---------------------------------------------------------------------

    def _model_fep(self, policy: Policy, t: int, armed: int | None) -> bool:
        fep = self.state.fep
        if fep is not None and fep.covers(t):
            return True
        return armed is not None and t < armed + policy.fep_reply_hours * HOUR

    def _entry_point(
        self, policy: Policy, t: int, facts: MessageFacts, model: bool, meta: bool | None
    ) -> None:
        discrepancy = UNEXPECTED_FEP if meta and not model else None
        known = self.state.meta.get(facts.conv_id) if facts.conv_id else None
        fep = self.state.fep
        active = fep if fep is not None and fep.covers(t) else None
        if policy.unit == CONVERSATION:
            joined = known or (active if facts.conv_id is None else None)
            if joined is not None:
                self._join(facts, joined.record_id, discrepancy)
                return
            if active is not None:
                discrepancy = discrepancy or UNEXPECTED_NEW
            window: Window | None = self._open_fep(policy, t, facts)
            source = _cbp_source(facts)
        else:  # one unit per message; the window only tells later messages they are inside
            window = None
            if active is None:
                self._open_fep(policy, t, facts)
            source = META if meta is not None else DERIVED
        free = FREE_ENTRY_POINT
        self._emit(policy, facts, t, REFERRAL, window, free, None, source, discrepancy)

    def _open_fep(self, policy: Policy, t: int, facts: MessageFacts) -> Window:
        """A new FEP window from ``t``; under CBP it closes every open conversation."""
        end = facts.conv_expires or t + policy.fep_hours * HOUR
        window = Window(self._rid(policy, "fep", facts), REFERRAL, t, end, policy.id, facts.conv_id)
        self.state.fep = window
        if policy.unit == CONVERSATION:
            self.state.open = {}
        if facts.conv_id:
            self.state.meta[facts.conv_id] = window
        return window

    # -- conversation-based pricing ------------------------------------------------------------

    def _conversation(
        self, policy: Policy, t: int, facts: MessageFacts, discrepancy: str | None
    ) -> None:
        covering, model_category = self._covering(policy, t, facts.category)
        category = _conversation_category(facts.category) if facts.category else model_category
        if category not in policy.categories:  # e.g. a template's category under cbp-2022
            category = model_category
            if facts.conv_id is not None:  # Meta named an era-foreign category: keep the model's
                discrepancy = discrepancy or CATEGORY_MISMATCH
        known = self.state.meta.get(facts.conv_id) if facts.conv_id else None
        if known is not None:  # Meta: this message belongs to a conversation we know
            self._join(facts, known.record_id, discrepancy or _join_code(covering))
        elif covering is not None and facts.conv_id is None:
            self._join(facts, covering.record_id, discrepancy)
        else:  # a new conversation: Meta's new id, or the model's decision
            if covering is not None:
                discrepancy = discrepancy or UNEXPECTED_NEW
            elif category != model_category:
                discrepancy = discrepancy or CATEGORY_MISMATCH
            self._open(policy, t, facts, category, discrepancy)

    def _covering(self, policy: Policy, t: int, category: str | None) -> tuple[Window | None, str]:
        """The open conversation a message of ``category`` joins at ``t``, and the category
        of the conversation it would open instead."""
        state = self.state
        if policy.opening == INITIATOR:
            return state.any_open(t), USER_INITIATED if state.csw_open(t) else BUSINESS_INITIATED
        if category in TEMPLATE_CATEGORIES:
            category = _conversation_category(category)
            window = state.open.get(category)
            if window is not None and window.covers(t):
                return window, category
            # Choice (the rule book is silent): a cbp-2022 conversation still open after
            # 2023-06-01 keeps covering every message until it expires, as under its own era.
            return state.any_open(t, INITIATOR_CATEGORIES), category
        return state.any_open(t), SERVICE

    def _open(
        self, policy: Policy, t: int, facts: MessageFacts, category: str, discrepancy: str | None
    ) -> None:
        end = facts.conv_expires if facts.conv_id and facts.conv_expires else None
        end = end or t + policy.conversation_hours * HOUR
        rid = self._rid(policy, category, facts)
        window = Window(rid, category, t, end, policy.id, facts.conv_id)
        if policy.opening == INITIATOR:
            self.state.open = {}
        self.state.open[category] = window
        if facts.conv_id:
            self.state.meta[facts.conv_id] = window
        free = FREE_SERVICE if category in policy.free_categories else None
        allowance = policy.allowance_for(category)
        bucket = allowance.scope if allowance and free is None else None
        source = _cbp_source(facts)
        self._emit(policy, facts, t, category, window, free, bucket, source, discrepancy)

    # -- per-message pricing -------------------------------------------------------------------

    def _message(
        self, policy: Policy, t: int, facts: MessageFacts, discrepancy: str | None
    ) -> None:
        category = facts.category or ""
        lingering = self.state.open.get(UTILITY)
        if category == UTILITY and lingering is not None and lingering.covers(t):
            # A CBP utility conversation opened before the switch still covers utility
            # templates (rule book 2.4); Meta shows them as CBP.
            if facts.pricing_model != "PMP":
                self._join(facts, lingering.record_id, discrepancy)
                return
            discrepancy = discrepancy or UNEXPECTED_NEW
        if facts.pricing_model == "CBP" and facts.conv_id in self.state.meta:
            self._join(
                facts, self.state.meta[facts.conv_id].record_id, discrepancy or UNEXPECTED_JOIN
            )
            return
        if category not in policy.categories or _unknown_type(facts):
            # Rule book 9.3: Meta adds values without notice; the unit is kept, unrated and
            # listed, and never uses an allowance (nor a rate an older era had for it).
            unit = self._emit(policy, facts, t, category, None, None, None, META, discrepancy)
            self.units[unit.record_id] = replace(unit, unrated=True)
            return
        free, source, discrepancy = self._message_free(policy, t, facts, category, discrepancy)
        bucket = None
        allowance = policy.allowance_for(category)
        if free is None and allowance is not None:
            bucket = allowance.scope
        elif free is None and category in policy.tiered_categories:
            bucket = VOLUME_TIER
        unit = self._emit(policy, facts, t, category, None, free, bucket, source, discrepancy)
        if allowance is not None and bucket == allowance.scope:
            said = facts.pricing_type
            in_tier = None if said is None else said in FREE_TIER_TYPES
            self.units[unit.record_id] = replace(unit, meta_in_tier=in_tier)

    def _message_free(
        self, policy: Policy, t: int, facts: MessageFacts, category: str, discrepancy: str | None
    ) -> tuple[str | None, str, str | None]:
        """Free reason, source and discrepancy of a PMP message: ``pricing.type`` wins, except
        where an allowance applies (the allowance is the processor's own work)."""
        model_free = self._model_free(policy, t, category)
        meta_type = facts.pricing_type
        if meta_type is None:
            return model_free, DERIVED, discrepancy
        if meta_type not in ("regular", FREE_CUSTOMER_SERVICE) or policy.allowance_for(category):
            return model_free, META, discrepancy
        meta_free = FREE_CUSTOMER_SERVICE if meta_type == FREE_CUSTOMER_SERVICE else None
        if (meta_free is None) != (model_free is None):
            code = UNEXPECTED_FREE if meta_free else UNEXPECTED_CHARGE
            if meta_free and category == UTILITY and not policy.utility_free_in_csw:
                code = UTILITY_IN_CSW_FREE  # pmp-2026-10: utility is charged in the CSW too
            discrepancy = discrepancy or code
        return meta_free, META, discrepancy

    def _model_free(self, policy: Policy, t: int, category: str) -> str | None:
        if category in policy.free_categories:
            return FREE_CUSTOMER_SERVICE
        if category == UTILITY and policy.utility_free_in_csw and self.state.csw_open(t):
            return FREE_CUSTOMER_SERVICE
        return None

    # -- output --------------------------------------------------------------------------------

    def _rid(self, policy: Policy, what: str, facts: MessageFacts) -> str:
        p = self.pair
        if what == "msg":
            return record_id("msg", p.phone_number_id, facts.wamid)
        if facts.conv_id:
            return record_id("conv", p.phone_number_id, facts.conv_id)
        return record_id("conv", p.phone_number_id, p.user_id, what, facts.wamid)

    def _emit(
        self,
        policy: Policy,
        facts: MessageFacts,
        t: int,
        category: str,
        window: Window | None,  # the conversation (CBP); None: the message is the unit (PMP)
        free: str | None,
        bucket: str | None,
        source: str,
        discrepancy: str | None,
    ) -> Unit:
        rid = window.record_id if window else self._rid(policy, "msg", facts)
        expires = window.end if window else None
        self.members[facts.wamid] = rid
        unit = self.units[rid] = Unit(
            record_id=rid,
            kind=policy.unit,
            policy=policy.id,
            pricing_model=policy.pricing_model,
            category=category,
            charge_time=t,
            expires_at=expires,
            wamid=facts.wamid,
            meta_conversation_id=facts.conv_id,
            free_reason=free,
            bucket=bucket,
            source=source,
            discrepancy=discrepancy,
            pricing_subtype=facts.subtype,
        )
        return unit

    def _join(self, facts: MessageFacts, rid: str, discrepancy: str | None) -> None:
        """``facts`` belongs to the unit ``rid``; a discrepancy it shows is noted on that unit."""
        self.members[facts.wamid] = rid
        unit = self.units.get(rid)
        if discrepancy is None or unit is None:
            return
        codes = sorted(set(filter(None, (unit.discrepancy or "").split(";"))) | {discrepancy})
        self.units[rid] = replace(unit, discrepancy=";".join(codes))


def _moments(history: PairHistory) -> list[tuple[int, int, str]]:
    """Inbound messages and deliveries in (time, inbound first, wamid) order."""
    moments = [(v[0], 0, wamid) for wamid, v in history.inbound.items()]
    for wamid, statuses in history.outbound.items():
        if SETTLED in statuses:
            continue
        charge_time = history.facts(wamid).charge_time
        if charge_time is not None:
            moments.append((charge_time, 1, wamid))
    moments.sort()
    return moments


def _meta_says_fep(policy: Policy, facts: MessageFacts) -> bool | None:
    """Meta's answer to "is this message in a free entry point?", or None if it gave none."""
    if facts.category == REFERRAL or facts.pricing_type == FREE_ENTRY_POINT:
        return True
    if policy.unit == MESSAGE:
        return False if facts.pricing_type is not None else None
    # Under CBP Meta answers with its conversation: a category without one is only the
    # message's own (template) category, which says nothing about an entry point.
    return False if facts.conv_id is not None else None


def _unknown_type(facts: MessageFacts) -> bool:
    """Whether Meta's ``pricing.type`` is a value the rule book does not know (9.3)."""
    return facts.pricing_type is not None and facts.pricing_type not in PRICING_TYPES


def _needs_category(policy: Policy, facts: MessageFacts) -> bool:
    """Whether the message's category must be known to judge it (cbp-2022 decides by the CSW)."""
    return facts.category is None and policy.opening != INITIATOR


def _cbp_source(facts: MessageFacts) -> str:
    """A CBP unit is Meta's when Meta named its conversation; otherwise the model bounded it."""
    return META if facts.conv_id else DERIVED


def _join_code(covering: Window | None) -> str | None:
    return None if covering is not None else UNEXPECTED_JOIN


def _conversation_category(category: str) -> str:
    return "marketing" if category == MARKETING_LITE else category


def walk(
    pair: Pair, history: PairHistory, tz: ZoneInfo, book: PolicyBook, until: int | None = None
) -> Walk:
    """The walk over ``history`` (up to, not including, moments at ``until``), done."""
    from processor.core.groups import GroupWalk, group_of  # a group's own rules (section 7)

    kind = GroupWalk if group_of(pair) is not None else Walk
    done = kind(pair, tz, book, WalkState.load(history.base))
    done.run(history, until)
    return done


def evaluate(pair: Pair, history: PairHistory, tz: ZoneInfo, book: PolicyBook) -> Evaluation:
    """The units and pending messages that ``history`` produces (a pure function of it)."""
    done = walk(pair, history, tz, book)
    units = tuple(sorted(done.units.values(), key=lambda u: (u.charge_time, u.record_id)))
    return Evaluation(units, tuple(done.pending))


def trim(
    pair: Pair,
    history: PairHistory,
    cutoff: int,
    tz: ZoneInfo,
    book: PolicyBook,
    settled_keep: int = 35 * 24 * HOUR,
) -> None:
    """Forget events before ``cutoff``, keeping the window state they leave behind.

    Messages charged before ``cutoff`` leave a stub (their charge time) for ``settled_keep``
    seconds, so that a late ``read`` of a message delivered long ago charges nothing again;
    messages not delivered yet (and not failed) are kept that long too.
    """
    state = walk(pair, history, tz, book, until=cutoff).state
    state.meta = {k: w for k, w in state.meta.items() if w.end > cutoff - settled_keep}
    history.base = state.dump()
    history.inbound = {k: v for k, v in history.inbound.items() if v[0] >= cutoff}
    outbound: dict[str, dict[str, list[Any]]] = {}
    for wamid, statuses in history.outbound.items():
        facts = history.facts(wamid)
        if facts.charge_time is None:
            # Meta may deliver days after ``sent`` (which alone carries the expiry): keep it.
            keep_from = cutoff if facts.failed else cutoff - settled_keep
            if max(f[0] for f in statuses.values()) >= keep_from:
                outbound[wamid] = statuses
        elif facts.charge_time >= cutoff:
            outbound[wamid] = statuses
        elif facts.charge_time >= cutoff - settled_keep:
            outbound[wamid] = {SETTLED: [facts.charge_time]}
    history.replace_outbound(outbound)
    history.units = {k: v for k, v in history.units.items() if v[1] >= cutoff}
    history.floor = max(history.floor, cutoff)

"""What is known about one (business number, user) pair: the facts every decision is made from.

The history is a set: merging the same event twice, or events in any order, gives the same
history, so that everything computed from it is independent of arrival order and redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processor.core import call_history, fastjson
from processor.core.events import (
    DELIVERED,
    FAILED,
    PLAYED,
    READ,
    SENT,
    CallEvent,
    Event,
    Inbound,
    Status,
)

# Which status's copy of a field is used first (Meta puts pricing on ``sent`` and on one of
# ``delivered``/``read``; the delivery-side one is authoritative).
PRECEDENCE = (DELIVERED, READ, PLAYED, SENT, FAILED)
# A message charged before the history's floor keeps only {SETTLED: [charge_time]}.
SETTLED = "x"
# A status fact is [t, conv_id, conv_expires, origin, pricing_model, category, type, billable],
# plus [subtype] when Meta sent ``pricing.subtype`` (facts stored without it stay valid).
# Spellings Meta uses for one category (billing-rules.md 3.4; meta-webhooks.md 8.5 and 8.6).
ALIASES = {"customer_initiated": "user_initiated"}


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """The merged view of every status seen for one outbound message."""

    wamid: str
    charge_time: int | None
    category: str | None
    conv_id: str | None
    conv_expires: int | None
    pricing_model: str | None
    pricing_type: str | None
    failed: bool
    subtype: str | None = None  # ``pricing.subtype`` verbatim (rule book 9.2.6: never read)


@dataclass
class PairHistory:
    """Inbound messages, outbound statuses and the units already emitted for one pair."""

    version: str = ""  # a token that changes with every write (compare-and-set)
    inbound: dict[str, list[Any]] = field(default_factory=dict)  # wamid -> [t, referral]
    outbound: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # wamid->status->fact
    units: dict[str, list[Any]] = field(default_factory=dict)  # record_id -> [signature, t]
    pending: dict[str, list[Any]] = field(default_factory=dict)  # wamid -> [t, reason]
    base: dict[str, Any] | None = None  # window state carried over from trimmed events
    floor: int = 0  # events older than this were trimmed; they can no longer be applied
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # call_id -> facts (calls)
    _facts: dict[str, MessageFacts] = field(default_factory=dict, repr=False, compare=False)

    # -- merging -----------------------------------------------------------------------------

    def merge(self, event: Event) -> bool:
        """Add ``event``; return whether the history changed (False: a duplicate)."""
        if isinstance(event, Inbound):
            return self._merge_inbound(event)
        if isinstance(event, CallEvent):  # a call also opens the CSW: as an inbound moment
            return call_history.merge(self.calls, self.inbound, event)
        return self._merge_status(event)

    def _merge_inbound(self, event: Inbound) -> bool:
        if event.msg_type == "system":  # number changes etc. are not messages from the user
            return False
        new = [event.timestamp, 1 if event.referral else 0]
        old = self.inbound.get(event.wamid)
        merged = new if old is None else [min(old[0], new[0]), max(old[1], new[1])]
        if merged == old:
            return False
        self.inbound[event.wamid] = merged
        return True

    def _merge_status(self, event: Status) -> bool:
        fact = _fact(event)
        statuses = self.outbound.setdefault(event.history_key, {})
        if SETTLED in statuses:  # charged before the floor: nothing can change it any more
            return False
        old = statuses.get(event.status)
        merged = fact if old is None else _merge_fact(old, fact)
        if merged == old:
            return False
        statuses[event.status] = merged
        self._facts.pop(event.history_key, None)
        return True

    def dominated(self, event: Status) -> bool:
        """Whether ``event`` can never change what the rules read, whatever comes later: its
        time cannot lower the charge time, and every field it carries is given already by a
        status that takes precedence (e.g. a ``read`` after a ``delivered`` with pricing)."""
        statuses = self.outbound.get(event.history_key)
        if not statuses or SETTLED in statuses or event.status in statuses:
            return False
        fact = _fact(event)
        if event.status in (DELIVERED, READ, PLAYED):
            charge = self.facts(event.history_key).charge_time
            if charge is None or fact[0] < charge:
                return False
        elif event.status == FAILED:
            return False  # the failed flag is news
        higher = [
            statuses[s] for s in PRECEDENCE[: PRECEDENCE.index(event.status)] if s in statuses
        ]
        return all(
            value is None or any(len(f) > i and f[i] is not None for f in higher)
            for i, value in enumerate(fact[1:], 1)
        )

    # -- reading -----------------------------------------------------------------------------

    def facts(self, wamid: str) -> MessageFacts:
        """The merged view of a message's statuses (cached until one of them changes)."""
        found = self._facts.get(wamid)
        if found is None:
            found = self._facts[wamid] = self._compute_facts(wamid)
        return found

    def replace_outbound(self, outbound: dict[str, dict[str, list[Any]]]) -> None:
        self.outbound = outbound
        self._facts.clear()

    def _compute_facts(self, wamid: str) -> MessageFacts:
        statuses = self.outbound[wamid]
        if SETTLED in statuses:
            return MessageFacts(wamid, statuses[SETTLED][0], None, None, None, None, None, False)
        delivered = [statuses[s][0] for s in (DELIVERED, READ, PLAYED) if s in statuses]
        ordered = [statuses[s] for s in PRECEDENCE if s in statuses]
        first = ordered[0] if len(ordered) == 1 else _firsts(ordered)
        return MessageFacts(
            wamid=wamid,
            charge_time=min(delivered) if delivered else None,
            category=first[5] or first[3],
            conv_id=first[1],
            conv_expires=first[2],
            pricing_model=first[4],
            pricing_type=first[6],
            failed=FAILED in statuses,
            subtype=next((f[8] for f in ordered if len(f) > 8), None),
        )

    def newest(self) -> int:
        times = [v[0] for v in self.inbound.values()]
        times += [f[0] for s in self.outbound.values() for f in s.values()]
        times += call_history.times(self.calls)
        return max(times, default=0)

    def oldest(self) -> int:
        """The oldest event time at or after the floor (older ones are kept on purpose)."""
        times = [v[0] for v in self.inbound.values()]
        times += [f[0] for s in self.outbound.values() if SETTLED not in s for f in s.values()]
        times += call_history.times(self.calls)
        return min((t for t in times if t >= self.floor), default=self.floor)

    def is_settled(self, wamid: str) -> bool:
        return SETTLED in self.outbound.get(wamid, {})

    # -- storage -----------------------------------------------------------------------------

    def dumps(self) -> str:
        doc: dict[str, Any] = {"i": self.inbound, "o": self.outbound, "u": self.units}
        if self.pending:
            doc["p"] = self.pending
        if self.base is not None:
            doc["b"] = self.base
        if self.floor:
            doc["f"] = self.floor
        if self.calls:
            doc["k"] = self.calls
        return fastjson.dumps_sorted(doc)

    @classmethod
    def loads(cls, raw: str | bytes | None, version: str = "") -> PairHistory:
        """The history stored as ``raw`` (the version is kept beside it, not inside)."""
        if not raw:
            return cls(version=version)
        doc = fastjson.loads(raw)
        return cls(
            version=version,
            inbound=doc["i"],
            outbound=doc["o"],
            units=doc["u"],
            pending=doc.get("p", {}),
            base=doc.get("b"),
            floor=doc.get("f", 0),
            calls=doc.get("k", {}),
        )

    def copy(self) -> PairHistory:
        return PairHistory.loads(self.dumps(), self.version)


def category_name(raw: str | None) -> str | None:
    """One spelling per category: ``authentication-international`` is ``..._international``."""
    if raw is None:
        return None
    name = raw.strip().lower().replace("-", "_")
    return ALIASES.get(name, name)


def _fact(event: Status) -> list[Any]:
    """A status as stored: [t, conv_id, conv_expires, origin, model, category, type, billable]."""
    conv, pricing = event.conversation, event.pricing
    fact = [
        event.timestamp,
        conv.id if conv else None,
        conv.expires_at if conv else None,
        category_name(conv.origin) if conv else None,
        pricing.model if pricing else None,
        category_name(pricing.category) if pricing else None,
        pricing.type if pricing else None,
        pricing.billable if pricing else None,
    ]
    if pricing is not None and pricing.subtype is not None:
        fact.append(pricing.subtype)
    return fact


def _at(fact: list[Any], index: int) -> Any:
    """A fact's field, None where an older (shorter) fact has no such field."""
    return fact[index] if index < len(fact) else None


def _firsts(facts: list[list[Any]]) -> list[Any]:
    """Field by field, the first value that is not None among ``facts`` (in their order)."""
    found: list[Any] = [None] * 7
    for fact in facts:
        for i in range(1, 7):  # the fields read: conversation .. pricing type
            if found[i] is None:
                found[i] = fact[i]
    return found


def _merge_fact(old: list[Any], new: list[Any]) -> list[Any]:
    """Commutative merge of two facts of the same status: earliest time, any known field."""
    merged = [min(old[0], new[0])]
    width = max(len(old), len(new))
    for a, b in ((_at(old, i), _at(new, i)) for i in range(1, width)):
        if a is None or b is None:
            merged.append(a if b is None else b)
        else:
            merged.append(min(a, b, key=lambda v: (str(type(v)), str(v))))
    return merged

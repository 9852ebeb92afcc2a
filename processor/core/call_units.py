"""A pair's calls -> the call units it produces (rule book §8.1, §8.4), pure.

One unit per connected call (duration > 0), business- or user-initiated, keyed ``call:<wacid>``.
A BIC is owed (``bucket: volume_tier``: its place in the portfolio × callee market × month
minute tiers is the ledger's work); a UIC is free (``free_user_initiated``) and never accrues.
Unanswered calls give no unit. The charge time is the call's end (or its start, by the policy
parameter ``call_charge_time``); a FAILED connected BIC is charged unless the policy's
``charge_failed_connected_calls`` is false, when it gives no unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from processor.core import call_history
from processor.core.calls import (
    FREE_USER_INITIATED,
    USER_INITIATED,
    Terminate,
    charge_time,
    connected,
)
from processor.core.events import Pair
from processor.core.history import PairHistory
from processor.core.model import DERIVED, Unit, record_id
from processor.core.policies import VOLUME_TIER, PolicyBook

CALL, CALLING, FAILED = "call", "calling", "FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUnit(Unit):
    """A connected call: a :class:`Unit` (kind ``call``, category ``calling``) and its facts."""

    direction: str
    call_id: str
    call_status: str
    start_time: int | None
    end_time: int | None
    duration_s: int
    pulses: int


def call_units(pair: Pair, history: PairHistory, tz: ZoneInfo, book: PolicyBook) -> list[CallUnit]:
    """The units of the pair's connected calls, in (charge time, call id) order."""
    found = []
    for call_id, fact in history.calls.items():
        terminate = call_history.terminate_of(call_id, fact)
        unit = None if terminate is None else call_unit(pair, terminate, tz, book)
        if unit is not None:
            found.append(unit)
    return sorted(found, key=lambda u: (u.charge_time, u.call_id))


def call_unit(pair: Pair, call: Terminate, tz: ZoneInfo, book: PolicyBook) -> CallUnit | None:
    """The unit of one terminated call, or None when it costs nothing and is not recorded."""
    facts = connected(call)
    if facts is None:
        return None
    status = call.status.upper() or "COMPLETED"
    at = charge_time(call)
    policy = book.at(at, tz)
    if policy is not None and policy.call_charge_time == "start" and call.start_time is not None:
        at = call.start_time
        policy = book.at(at, tz) or policy
    uic = call.direction == USER_INITIATED
    if status == FAILED and not uic and policy and not policy.charge_failed_connected_calls:
        return None
    return CallUnit(
        record_id=record_id(CALL, pair.phone_number_id, call.call_id),
        kind=CALL,
        policy=policy.id if policy else "",
        pricing_model=policy.pricing_model if policy else "",
        category=CALLING,
        charge_time=at,
        expires_at=None,
        wamid=call.call_id,
        meta_conversation_id=None,
        free_reason=FREE_USER_INITIATED if uic else None,
        bucket=None if uic else VOLUME_TIER,
        source=DERIVED,
        discrepancy=facts.discrepancy,
        direction=call.direction,
        call_id=call.call_id,
        call_status=status,
        start_time=call.start_time,
        end_time=call.end_time,
        duration_s=facts.duration_s,
        pulses=facts.pulses,
    )


def trim_calls(
    pair: Pair, history: PairHistory, cutoff: int, tz: ZoneInfo, book: PolicyBook
) -> None:
    """Forget the calls the history's trim at ``cutoff`` settles: a call whose unit is charged
    before ``cutoff`` (the trim forgets that unit too), or an unrecorded call all older."""
    units = {u.call_id: u.charge_time for u in call_units(pair, history, tz, book)}
    kept = {}
    for call_id, fact in history.calls.items():
        last = units.get(call_id, max(call_history.times({call_id: fact}), default=0))
        if last >= cutoff:
            kept[call_id] = fact
    history.calls = kept

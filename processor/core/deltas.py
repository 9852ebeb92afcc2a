"""Corrections as deltas: what a summing target (OpenMeter, Lago, Stripe) must receive for one
record version so that its sums equal the latest version of every record.

A target that sums event values cannot replace an event it already counted. So for each record
we remember what was sent (``Sent``: its version, time, grouping and amounts), and a new
version is sent as the difference:

- same grouping (month, category, market, billable, free reason, currency, account) as what was
  sent: one event with the differences of units, cost and billed cost (none when nothing
  changed);
- another grouping (a re-rating moved the record to another market, a late status to another
  month, the WABA to another customer): a reversal of what was sent, at the time and under the
  grouping it was sent with, and the full new amounts under the new grouping.

Event keys are derived from ``record_id`` and ``version`` only, so that planning the same
version against the same state always gives the same keys (a retried batch is deduplicated by
the target). A version not newer than what was sent plans nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
DIMENSIONS = ("billing_month", "category", "market", "billable", "free_reason", "currency")


@dataclass(frozen=True)
class Amounts:
    units: int
    cost: Decimal
    billed_cost: Decimal
    minutes: Decimal = ZERO  # a call's billed minutes (rule book 8.4); 0 for messages

    def minus(self, other: Amounts) -> Amounts:
        return Amounts(
            self.units - other.units,
            self.cost - other.cost,
            self.billed_cost - other.billed_cost,
            self.minutes - other.minutes,
        )

    def negated(self) -> Amounts:
        return Amounts(-self.units, -self.cost, -self.billed_cost, -self.minutes)

    @property
    def zero(self) -> bool:
        return (
            self.units == 0
            and self.cost == ZERO
            and self.billed_cost == ZERO
            and self.minutes == ZERO
        )


@dataclass(frozen=True)
class Sent:
    """What a target holds for one record (the sum of the events sent for it)."""

    version: int
    time: str
    dims: dict[str, Any]
    amounts: Amounts

    def dump(self) -> str:
        a = self.amounts
        doc = {"v": self.version, "t": self.time, "d": self.dims, "u": a.units,
               "c": _text(a.cost), "b": _text(a.billed_cost)}  # fmt: skip
        if a.minutes != ZERO:  # calls only (states of message records stay as they were)
            doc["m"] = _text(a.minutes)
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

    @staticmethod
    def load(raw: str | bytes) -> Sent:
        doc = json.loads(raw)
        minutes = Decimal(doc.get("m", "0"))
        amounts = Amounts(int(doc["u"]), Decimal(doc["c"]), Decimal(doc["b"]), minutes)
        return Sent(int(doc["v"]), str(doc["t"]), dict(doc["d"]), amounts)


@dataclass(frozen=True)
class Event:
    """One event to send: its idempotency key, time, grouping and (signed) amounts."""

    key: str
    record_id: str
    version: int
    waba_id: str
    time: str
    dims: dict[str, Any]
    amounts: Amounts
    reversal: bool = False


def amounts_of(record: dict[str, Any]) -> Amounts:
    """What a record counts for: nothing when void; an unrated cost (null) counts 0; a call
    also its billed minutes."""
    if record.get("void"):
        return Amounts(0, ZERO, ZERO)
    minutes = _decimal(record.get("billed_minutes")) if record.get("kind") == "call" else ZERO
    cost, billed = _decimal(record.get("cost")), _decimal(record.get("billed_cost"))
    return Amounts(1, cost, billed, minutes)


def dims_of(record: dict[str, Any], account: str) -> dict[str, Any]:
    dims = {name: record.get(name) for name in DIMENSIONS}
    dims["account"] = account
    return dims


def plan(record: dict[str, Any], account: str, before: Sent | None) -> tuple[list[Event], Sent]:
    """The events that bring the target from ``before`` to this version, and the new state.

    Returns no events and ``before`` unchanged when ``before`` is this version or newer."""
    version = int(record["version"])
    if before is not None and before.version >= version:
        return [], before
    rid, waba = str(record["record_id"]), str(record["waba_id"])
    now = Sent(version, str(record["charge_time"]), dims_of(record, account), amounts_of(record))
    events: list[Event] = []
    key = f"{rid}:{version}"
    if before is not None and before.dims == now.dims:
        delta = now.amounts.minus(before.amounts)
        if not delta.zero:
            events.append(Event(key, rid, version, waba, now.time, now.dims, delta))
        return events, now
    if before is not None and not before.amounts.zero:
        back = before.amounts.negated()
        events.append(
            Event(f"{key}:reversal", rid, version, waba, before.time, before.dims, back, True)
        )
    if not now.amounts.zero:
        events.append(Event(key, rid, version, waba, now.time, now.dims, now.amounts))
    return events, now


def _decimal(value: Any) -> Decimal:
    return ZERO if value is None or value == "" else Decimal(str(value))


def _text(value: Decimal) -> str:
    return format(value, "f")


def money(value: Decimal) -> str:
    """A signed decimal as a plain string, without a trailing exponent."""
    return _text(value)

"""Campaign quotes, the pure part: adding up what each send of a batch would cost.

The storage layer decides each send in order (:func:`processor.core.quote.quote` plus the
bucket counts, with the batch's own earlier sends counted in) and hands every outcome to a
:class:`Tally`, which groups them per market and per bucket. Money stays exact; a send with no
rate on the rate card is counted as unrated, never priced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Send:
    """The outcome of one send of the batch."""

    market: str
    allowed: bool
    reason: str
    opens: bool
    billable: bool
    free_reason: str | None
    tier: str | None
    rate: Decimal | None
    billed_rate: Decimal | None


@dataclass
class MarketTally:
    market: str
    recipients: int = 0
    allowed: int = 0
    opens_charge: int = 0
    billable: int = 0
    unrated: int = 0
    cost: Decimal = Decimal(0)
    billed_cost: Decimal = Decimal(0)
    reasons: Counter[str] = field(default_factory=Counter)
    free: Counter[str] = field(default_factory=Counter)
    rates: Counter[tuple[str | None, Decimal, Decimal]] = field(default_factory=Counter)

    def add(self, send: Send) -> None:
        self.recipients += 1
        self.reasons[send.reason] += 1
        self.allowed += send.allowed
        self.opens_charge += send.opens
        if send.opens and not send.billable and send.free_reason:
            self.free[send.free_reason] += 1
        if not send.billable:
            return
        self.billable += 1
        if send.rate is None:
            self.unrated += 1
            return
        billed = send.billed_rate if send.billed_rate is not None else send.rate
        self.cost += send.rate
        self.billed_cost += billed
        self.rates[(send.tier, send.rate, billed)] += 1

    def to_json(self) -> dict[str, Any]:
        rates = [
            {
                "tier": tier,
                "rate": _m(rate),
                "billed_rate": _m(billed),
                "count": n,
                "cost": _m(rate * n),
                "billed_cost": _m(billed * n),
            }
            for (tier, rate, billed), n in sorted(self.rates.items(), key=_rate_order)
        ]
        return {
            "market": self.market,
            "recipients": self.recipients,
            "allowed": self.allowed,
            "opens_charge": self.opens_charge,
            "billable": self.billable,
            "unrated": self.unrated,
            "free": dict(sorted(self.free.items())),
            "reasons": dict(sorted(self.reasons.items())),
            "rates": rates,
            "cost": _m(self.cost),
            "billed_cost": _m(self.billed_cost),
        }


class Tally:
    """Every send of a batch, per market, in the order they were added."""

    def __init__(self) -> None:
        self.markets: dict[str, MarketTally] = {}

    def add(self, send: Send) -> None:
        self.markets.setdefault(send.market, MarketTally(send.market)).add(send)

    def totals(self) -> dict[str, Any]:
        tallies = list(self.markets.values())
        return {
            "recipients": sum(t.recipients for t in tallies),
            "allowed": sum(t.allowed for t in tallies),
            "opens_charge": sum(t.opens_charge for t in tallies),
            "billable": sum(t.billable for t in tallies),
            "unrated": sum(t.unrated for t in tallies),
            "total_cost": _m(sum((t.cost for t in tallies), Decimal(0))),
            "total_billed_cost": _m(sum((t.billed_cost for t in tallies), Decimal(0))),
            "markets": [t.to_json() for t in sorted(tallies, key=lambda t: t.market)],
        }


def _rate_order(item: tuple[tuple[str | None, Decimal, Decimal], int]) -> tuple[str, Decimal]:
    (tier, rate, _), _n = item
    return (tier or "", rate)


def _m(value: Decimal) -> str:
    return format(value, "f")

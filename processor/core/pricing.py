"""Pricing one unit at its place in a bucket: the one home of this rule.

A bucket (a free allowance, or a portfolio x market x category x month of volume tiers) orders
its units; the k-th unit (1-based ``position``) takes the *place* of its own table that holds k:
the first place whose ``to`` is at least k (``to`` None: unbounded). A place may make the unit
free (``free``: an allowance), or carry a volume tier's ``rate``/``billed`` rate and ``label``;
otherwise the unit keeps its list rate. Where Meta said whether an allowance unit is inside
the free tier (``meta_in_tier``, rule book 9.3), Meta's answer picks the place (the first
place: inside; the last: beyond) and a differing place is a ``service_allowance_mismatch``.
Each unit carries its own table (the tiers of its own
WABA's currency in force on its own charge date), so units of one bucket may hold different
tables: only their positions are shared.

The apply script (``processor/store/lua/pricing.lua``) implements the same rule in Lua; both
are run against the same table of cases (``tests/data/pricing_cases.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from processor.core.rating import Tier

ZERO = Decimal(0)


@dataclass(frozen=True)
class Place:
    """Places ``..to`` of a bucket (from the previous place's ``to``, exclusive)."""

    to: int | None
    rate: Decimal | None = None  # a volume tier's rate (None: the unit's list rate)
    billed: Decimal | None = None
    free: str | None = None  # a free reason (allowance places)
    label: str | None = None  # the tier label, Meta's style "from+1:to"

    def doc(self) -> dict[str, Any]:
        """The JSON form the apply script reads (money as decimal strings)."""
        return {"to": self.to, "rate": _text(self.rate), "billed": _text(self.billed),
                "free": self.free, "label": self.label}  # fmt: skip

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Place:
        return cls(
            to=None if doc.get("to") is None else int(doc["to"]),
            rate=_decimal(doc.get("rate")),
            billed=_decimal(doc.get("billed")),
            free=doc.get("free"),
            label=doc.get("label"),
        )


PLAIN: tuple[Place, ...] = (Place(None),)


@dataclass(frozen=True)
class Priced:
    """What a unit costs at its place."""

    billable: bool
    free_reason: str | None
    rate: Decimal | None  # None: the rate card has no price (the unit is unrated)
    billed_rate: Decimal | None
    tier: str | None
    cost: Decimal | None
    billed_cost: Decimal | None
    mismatch: bool = False  # Meta's free-tier answer differed from the place (not a field)

    def fields(self) -> dict[str, Any]:
        """The record fields, money as decimal strings."""
        return {"billable": self.billable, "free_reason": self.free_reason,
                "rate": _text(self.rate), "billed_rate": _text(self.billed_rate),
                "tier": self.tier, "cost": _text(self.cost),
                "billed_cost": _text(self.billed_cost)}  # fmt: skip


def place_at(places: Sequence[Place], position: int) -> Place:
    """The place of ``places`` that holds the ``position``-th unit (1-based)."""
    for place in places:
        if place.to is None or position <= place.to:
            return place
    return places[-1]


def price_at(
    places: Sequence[Place],
    position: int,
    list_rate: Decimal | None,
    list_billed_rate: Decimal | None,
    rule_free_reason: str | None,
    meta_in_tier: bool | None = None,
) -> Priced:
    """The money of a unit at ``position`` of its bucket, priced from its own ``places``.

    A unit the rules made free stays free; a free place (allowance) makes it free; a tier
    place sets its rate; a free unit costs 0, a billable one its rate (None when unrated).
    Meta's answer ``meta_in_tier`` (an allowance unit) wins over the position."""
    place = place_at(places, position)
    mismatch = False
    if meta_in_tier is not None:
        said = places[0] if meta_in_tier else places[-1]
        mismatch, place = said is not place, said
    free = place.free or rule_free_reason
    rate = place.rate if place.rate is not None else list_rate
    billed = place.billed if place.billed is not None else list_billed_rate
    billable = free is None
    return Priced(
        billable=billable,
        free_reason=free,
        rate=rate,
        billed_rate=billed,
        tier=place.label,
        cost=rate if billable else ZERO,
        billed_cost=billed if billable else ZERO,
        mismatch=mismatch,
    )


def tier_places(tiers: Iterable[Tier]) -> tuple[Place, ...]:
    """Volume tiers as places (rate, billed rate with markup, Meta's label)."""
    return tuple(Place(t.to_volume, t.rate, t.billed_rate, None, t.label) for t in tiers)


def allowance_places(limit: int, free_reason: str, beyond: str | None = None) -> tuple[Place, ...]:
    """The first ``limit`` units are free; the rest keep their list rate (or are free for
    ``beyond``: an exempt organisation's service units, rule book 9.2.6)."""
    return (Place(limit, free=free_reason), Place(None, free=beyond))


def bounds(places: Iterable[Place]) -> list[int]:
    """The positions after which a unit moving one place back changes place."""
    return sorted({p.to for p in places if p.to is not None})


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))

"""Meta's ``pricing_analytics`` answers -> data points (pure, forgiving).

The first page is ``{"pricing_analytics": {"data": [{"data_points": [...]}], "paging": {...}},
"id": ...}``; pages reached through ``paging.next`` are ``{"data": [...], "paging": {...}}``.
A data point has ``start``, ``end``, ``volume``, ``cost`` (absent for WABAs on a partner's
credit line) and, per requested dimension, ``phone_number`` (the display number), ``country``,
``pricing_category``, ``pricing_type`` and ``tier``. Values Meta adds later are kept as they come.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

_TOKEN = re.compile(r"[A-Za-z0-9_:.+-]{1,64}")


@dataclass(frozen=True)
class MetaPoint:
    """One of Meta's data points (absent dimensions and metrics are ``None``)."""

    start: int
    phone: str | None
    country: str | None
    category: str | None
    pricing_type: str | None
    tier: str | None
    volume: int
    cost: Decimal | None


@dataclass
class ParsedPoints:
    points: list[MetaPoint] = field(default_factory=list)
    skipped: int = 0  # data points that were not objects or had no usable start


def parse_pages(pages: Iterable[Mapping[str, Any]]) -> ParsedPoints:
    """Meta's answers (first page ``{pricing_analytics: {data, paging}}``, later pages
    ``{data, paging}``) -> data points. Malformed points are counted, never fatal."""
    out = ParsedPoints()
    for page in pages:
        node = page.get("pricing_analytics", page)
        data = node.get("data") if isinstance(node, Mapping) else None
        for group in data if isinstance(data, list) else ():
            points = group.get("data_points") if isinstance(group, Mapping) else None
            for raw in points if isinstance(points, list) else ():
                point = _point(raw)
                if point is None:
                    out.skipped += 1
                else:
                    out.points.append(point)
    return out


def _point(raw: Any) -> MetaPoint | None:
    if not isinstance(raw, Mapping):
        return None
    start = to_int(raw.get("start"))
    volume = to_int(raw.get("volume"))
    if start is None:
        return None
    cost = raw.get("cost")
    return MetaPoint(
        start=start,
        phone=digits(raw.get("phone_number")),
        country=_token(raw.get("country"), upper=True),
        category=_token(raw.get("pricing_category"), upper=False),
        pricing_type=_token(raw.get("pricing_type"), upper=True),
        tier=_token(raw.get("tier"), upper=True),
        volume=volume or 0,
        cost=None if cost is None else to_decimal(cost),
    )


def to_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 15:
        return int(raw)
    if isinstance(raw, Decimal) and raw == raw.to_integral_value():
        return int(raw)
    return None


def to_decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal):
        return raw if raw.is_finite() else None
    if isinstance(raw, int | float | str):
        try:
            value = Decimal(str(raw).strip())
        except (InvalidOperation, ValueError):
            return None
        return value if value.is_finite() else None
    return None


def digits(raw: Any) -> str | None:
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    digits = re.sub(r"[^0-9]", "", str(raw))
    return digits or None


def _token(raw: Any, upper: bool) -> str | None:
    """A dimension value: kept as Meta sends it (bounded, printable), case-normalised."""
    if not isinstance(raw, str) or not _TOKEN.fullmatch(raw.strip()):
        return None
    value = raw.strip()
    return value.upper() if upper else value.lower().replace("-", "_")

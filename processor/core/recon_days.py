"""Ours vs Meta per day: a stored reconciliation result (``GET /v1/reconciliation``'s document)
added up per local day of the WABA, for the cost dashboard.

A day's cost is null when one of its lines' cost is null (an unrated unit of ours, or a line
Meta gave no cost for): never a partial sum shown as if it were the day's figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from processor.core.reconcile import STATUSES


def per_day(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per day with lines, in day order: ``day``, ``ours_volume``, ``meta_volume``,
    ``ours_cost``, ``meta_cost`` (decimal strings or None), ``statuses`` (status -> line count,
    in the order of :data:`STATUSES`, only those present), ``differs`` (a line is not
    ``match``) and ``provisional`` (a line is)."""
    days: dict[str, list[Mapping[str, Any]]] = {}
    for line in result.get("lines", ()):
        days.setdefault(str(line["day"]), []).append(line)
    return [_day(day, lines) for day, lines in sorted(days.items())]


def _day(day: str, lines: list[Mapping[str, Any]]) -> dict[str, Any]:
    found = {s: sum(1 for x in lines if x["status"] == s) for s in STATUSES}
    return {
        "day": day,
        "ours_volume": sum(int(x["ours_volume"]) for x in lines),
        "meta_volume": sum(int(x["meta_volume"]) for x in lines),
        "ours_cost": _sum(x.get("ours_cost") for x in lines),
        "meta_cost": _sum(x.get("meta_cost") for x in lines),
        "statuses": {s: n for s, n in found.items() if n},
        "differs": any(x["status"] != "match" for x in lines),
        "provisional": any(bool(x.get("provisional")) for x in lines),
    }


def _sum(values: Iterable[Any]) -> str | None:
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += Decimal(str(value))
    return format(total, "f")

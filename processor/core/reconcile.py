"""Reconciliation: our records beside Meta's ``pricing_analytics``, line by line.

Pure: Meta's pages come in as decoded JSON, our records as the ledger stores them, the time as
an argument. A line is keyed by (local day, business number, country, category, pricing type):
Meta's data points are summed per key (the TIER dimension splits a key into several points),
ours are counted per key. Volume is compared exactly, cost within a :class:`Tolerance`.
Values Meta adds later (a new category, a new pricing type) are carried through as they come.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from processor.core.analytics import MetaPoint, digits, to_decimal, to_int

MATCH, VOLUME_DIFF, COST_DIFF = "match", "volume_diff", "cost_diff"
ONLY_META, ONLY_OURS, COST_UNAVAILABLE = "only_meta", "only_ours", "cost_unavailable"
STATUSES = (MATCH, VOLUME_DIFF, COST_DIFF, ONLY_META, ONLY_OURS, COST_UNAVAILABLE)
REGULAR = "REGULAR"
FREE_CUSTOMER_SERVICE = "FREE_CUSTOMER_SERVICE"
FREE_GROUP_CUSTOMER_SERVICE = "FREE_GROUP_CUSTOMER_SERVICE"
FREE_ENTRY_POINT = "FREE_ENTRY_POINT"
PROVISIONAL_SECONDS = 48 * 3_600
LINE_FIELDS = (
    "day",
    "phone_number_id",
    "display_phone_number",
    "country",
    "category",
    "pricing_type",
    "ours_volume",
    "meta_volume",
    "ours_cost",
    "meta_cost",
    "status",
    "provisional",
)
# Months a reconciliation can be asked for: years 1970 to 9998 (Unix time, and a next month that
# Python's dates can hold).
MONTH_PATTERN = r"(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(0[1-9]|1[0-2])"
_MONTH = re.compile(MONTH_PATTERN)


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """A cost difference is accepted up to ``max(absolute, percent % of Meta's cost)``."""

    absolute: Decimal = Decimal("0.01")
    percent: Decimal = Decimal("0.5")

    def allows(self, ours: Decimal, meta: Decimal) -> bool:
        limit = max(self.absolute, abs(meta) * self.percent / 100)
        return abs(ours - meta) <= limit


def parse_tolerance(raw: str) -> Tolerance:
    """``"0.01"``, ``"0.5%"`` or both, comma-separated (``"0.01,0.5%"``); ValueError if bad."""
    absolute, percent = Decimal(0), Decimal(0)
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or len(parts) > 2:
        raise ValueError(raw)
    for part in parts:
        number = to_decimal(part[:-1] if part.endswith("%") else part)
        if number is None or number < 0:
            raise ValueError(raw)
        if part.endswith("%"):
            percent = number
        else:
            absolute = number
    return Tolerance(absolute, percent)


# -- the month in the WABA's zone --------------------------------------------------------------


def month_bounds(month: str, tz: ZoneInfo) -> tuple[int, int]:
    """Unix seconds of the local midnights that start ``month`` and the month after it."""
    found = _MONTH.fullmatch(month)
    if not found:
        raise ValueError(f"not a month: {month!r}")
    year, number = int(found.group(1)), int(found.group(2))
    first = datetime(year, number, 1, tzinfo=tz)
    following = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return int(first.timestamp()), int(following.timestamp())


def local_day(timestamp: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(timestamp, tz).date().isoformat()


def _day_end(day: str, tz: ZoneInfo) -> int:
    following = date.fromisoformat(day) + timedelta(days=1)
    return int(datetime(following.year, following.month, following.day, tzinfo=tz).timestamp())


# -- our side ----------------------------------------------------------------------------------


def pricing_type_of(record: Mapping[str, Any]) -> str:
    """Meta's ``pricing_type`` for one of our records (rule book §9.3)."""
    category = str(record.get("category") or "")
    if record.get("billable"):
        return REGULAR
    reason = record.get("free_reason")
    if reason == "free_entry_point":
        return FREE_ENTRY_POINT
    if reason == "free_customer_service" or (
        reason == "free_tier" and str(record.get("policy", "")).startswith("pmp-")
    ):
        return (
            FREE_GROUP_CUSTOMER_SERVICE
            if category.startswith("group_")
            else (FREE_CUSTOMER_SERVICE)
        )
    return str(reason or "unknown").upper()  # CBP-era reasons: Meta reports no such thing


def _record_time(record: Mapping[str, Any]) -> int | None:
    raw = record.get("charge_time")
    if not isinstance(raw, str):
        return None
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


# -- matching ----------------------------------------------------------------------------------

Key = tuple[str, str, str, str, str]  # day, number, country, category, pricing type


@dataclass
class _Side:
    volume: int = 0
    cost: Decimal | None = Decimal(0)
    seen: bool = False

    def add(self, volume: int, cost: Decimal | None) -> None:
        self.seen = True
        self.volume += volume
        self.cost = None if cost is None or self.cost is None else self.cost + cost


@dataclass(frozen=True)
class Inputs:
    """Everything one reconciliation reads; ``now`` decides which days are provisional."""

    waba_id: str
    month: str
    currency: str
    tz: ZoneInfo
    fetched_at: int
    now: int
    tolerance: Tolerance
    points: list[MetaPoint]
    records: Sequence[Mapping[str, Any]]
    display_numbers: Mapping[str, str]  # phone_number_id -> display number (digits)
    market_of: Callable[[str | None, str], str] = lambda country, day: "Other"
    tier_updates: Sequence[Mapping[str, Any]] = ()


def reconcile(inp: Inputs) -> dict[str, Any]:
    """The result document: ``{waba_id, month, currency, fetched_at, totals, lines, tiers}``."""
    by_display = {digits(v) or v: k for k, v in inp.display_numbers.items()}
    meta: dict[Key, _Side] = defaultdict(_Side)
    ours: dict[Key, _Side] = defaultdict(_Side)
    for p in inp.points:
        day = local_day(p.start, inp.tz)
        if not day.startswith(inp.month) or (p.volume == 0 and not p.cost):
            continue
        number = by_display.get(p.phone or "") or _display_key(p.phone)
        key = (day, number, p.country or "", p.category or "", p.pricing_type or "")
        meta[key].add(p.volume, p.cost)
    for rec in inp.records:
        at = _record_time(rec)
        if rec.get("void") or at is None or rec.get("kind") == "call":
            continue  # calls are in Meta's call_analytics, not pricing_analytics (book 8.5)
        day = local_day(at, inp.tz)
        if not day.startswith(inp.month):
            continue  # not possible for records of the month's own hash; kept symmetric
        category = str(rec.get("category") or "")
        key = (
            day,
            str(rec.get("phone_number_id") or ""),
            str(rec.get("country") or ""),
            category,
            pricing_type_of(rec),
        )
        ours[key].add(1, _record_cost(rec))
    lines = [
        _line(key, ours.get(key, _Side()), meta.get(key, _Side()), inp)
        for key in sorted(set(meta) | set(ours))
    ]
    return {
        "waba_id": inp.waba_id,
        "month": inp.month,
        "currency": inp.currency,
        "fetched_at": _iso(inp.fetched_at),
        "totals": _totals(lines),
        "lines": lines,
        "tiers": tiers(inp),
    }


def _record_cost(rec: Mapping[str, Any]) -> Decimal | None:
    """Meta's price of the unit (never our marked-up one); ``None`` when unrated."""
    if not rec.get("billable"):
        return Decimal(0)
    return to_decimal(rec.get("cost")) if rec.get("cost") is not None else None


def _display_key(phone: str | None) -> str:
    return f"display:{phone}" if phone else ""


def _line(key: Key, ours: _Side, meta: _Side, inp: Inputs) -> dict[str, Any]:
    day, number, country, category, ptype = key
    unknown = number.startswith("display:")
    phone_number_id = None if unknown or not number else number
    display = number.removeprefix("display:") if unknown else inp.display_numbers.get(number)
    return {
        "day": day,
        "phone_number_id": phone_number_id,
        "display_phone_number": digits(display) if display else None,
        "country": country or None,
        "category": category or None,
        "pricing_type": ptype or None,
        "ours_volume": ours.volume,
        "meta_volume": meta.volume,
        "ours_cost": _money(ours.cost) if ours.seen else "0",
        "meta_cost": _money(meta.cost) if meta.seen else "0",
        "status": status(ours, meta, inp.tolerance),
        "provisional": _day_end(day, inp.tz) > inp.now - PROVISIONAL_SECONDS,
    }


def status(ours: _Side, meta: _Side, tolerance: Tolerance) -> str:
    if not meta.seen:
        return ONLY_OURS
    if not ours.seen:
        return ONLY_META
    if ours.volume != meta.volume:
        return VOLUME_DIFF
    if meta.cost is None:
        return COST_UNAVAILABLE
    if ours.cost is None or not tolerance.allows(ours.cost, meta.cost):
        return COST_DIFF
    return MATCH


def _totals(lines: list[dict[str, Any]]) -> dict[str, Any]:
    def total(name: str) -> str | None:
        values = [line[name] for line in lines]
        if any(v is None for v in values):
            return None
        return _money(sum((Decimal(v) for v in values), Decimal(0)))

    return {
        "ours_volume": sum(line["ours_volume"] for line in lines),
        "meta_volume": sum(line["meta_volume"] for line in lines),
        "ours_cost": total("ours_cost"),
        "meta_cost": total("meta_cost"),
    }


def drift(result: Mapping[str, Any]) -> Decimal:
    """Our cost minus Meta's, over the lines where both are known."""
    out = Decimal(0)
    for line in result.get("lines", ()):
        if line.get("ours_cost") is not None and line.get("meta_cost") is not None:
            out += Decimal(line["ours_cost"]) - Decimal(line["meta_cost"])
    return out


def counts(result: Mapping[str, Any]) -> dict[str, int]:
    """Lines per status (every status present, zero included)."""
    found = dict.fromkeys(STATUSES, 0)
    for line in result.get("lines", ()):
        found[line["status"]] = found.get(line["status"], 0) + 1
    return found


# -- tiers -------------------------------------------------------------------------------------


def tiers(inp: Inputs) -> list[dict[str, Any]]:
    """Per market and category: Meta's latest tier, the tier our units reached, and the tier
    webhooks Meta sent for the month (``account_update`` ``VOLUME_BASED_PRICING_TIER_UPDATE``)."""
    meta: dict[tuple[str, str], tuple[int, str]] = {}
    for p in inp.points:
        day = local_day(p.start, inp.tz)
        if p.tier is None or not day.startswith(inp.month) or not p.volume:
            continue
        key = (inp.market_of(p.country, day), p.category or "")
        meta[key] = max(meta.get(key, (p.start, p.tier)), (p.start, p.tier), key=_tier_order)
    ours: dict[tuple[str, str], tuple[int, str]] = {}
    for rec in inp.records:
        at = _record_time(rec)
        if rec.get("void") or at is None or not rec.get("tier"):
            continue
        key = (str(rec.get("market") or ""), str(rec.get("category") or ""))
        ours[key] = max(ours.get(key, (at, rec["tier"])), (at, str(rec["tier"])))
    updates: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for update in inp.tier_updates:
        market = _market_named(str(update.get("region") or ""), set(meta) | set(ours))
        key = (market, str(update.get("pricing_category") or "").lower())
        updates[key].append(dict(update))
    out = []
    for key in sorted(set(meta) | set(ours) | set(updates)):
        out.append(
            {
                "market": key[0],
                "category": key[1],
                "meta_tier": meta[key][1] if key in meta else None,
                "ours_tier": ours[key][1] if key in ours else None,
                "tier_updates": sorted(updates.get(key, []), key=_update_order),
            }
        )
    return out


def _tier_order(item: tuple[int, str]) -> tuple[int, int]:
    """Later days win; within a day the higher tier (``"0:MAX"`` above any number)."""
    start, tier = item
    low = tier.split(":", 1)[0]
    return start, int(low) if low.isdigit() else 0


def _market_named(region: str, keys: set[tuple[str, str]]) -> str:
    """A tier webhook's ``region`` ("INDIA") as the market name we use ("India")."""
    plain = re.sub(r"[^a-z]", "", region.lower())
    for market, _ in keys:
        if re.sub(r"[^a-z]", "", market.lower()) == plain:
            return market
    return region


def _update_order(update: Mapping[str, Any]) -> tuple[int, str]:
    return to_int(update.get("tier_update_time")) or 0, str(update.get("tier") or "")


# -- small helpers -----------------------------------------------------------------------------


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")

"""The calling rate files of the configuration directory (rule book §8.1.4 to 8.1.7).

``calling_rates.csv``: ``effective_from,market,currency,rate_per_minute,source``;
``calling_tiers.csv``: ``effective_from,market,currency,from_minutes,to_minutes,rate_per_minute,
source`` (``from_minutes`` exclusive, an empty ``to_minutes`` unbounded). Both are optional:
without a row for a market, its calls are unrated (cost null), never priced by a guess.
Problems are reported as the other files' are (``file:line:column``).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from processor.config_files import Fields, Parsed, Row, Table, _items, _unique, read_table
from processor.core.call_rates import CallingBook, CallingRateRow, CallingTierRow
from processor.core.rating import OTHER

CALLING_RATES = Table(
    "calling_rates.csv",
    ("effective_from", "market", "currency", "rate_per_minute"),
    False,
    ("source",),
)
CALLING_TIERS = Table(
    "calling_tiers.csv",
    ("effective_from", "market", "currency", "from_minutes", "to_minutes", "rate_per_minute"),
    False,
    ("source",),
)


def load_calling(config_dir: Path, markets: list[Row], problems: list[str]) -> CallingBook:
    """Read both calling files; their problems are added to ``problems``."""
    rates = _rates(read_table(config_dir, CALLING_RATES, problems), problems)
    tiers = _tiers(read_table(config_dir, CALLING_TIERS, problems), problems)
    known = {row.cells["market"] for row in markets} | {OTHER}
    named: list[tuple[Row, CallingRateRow | CallingTierRow]] = [*rates, *tiers]
    for row, item in named:
        if markets and item.market not in known:
            problems.append(f"{row.where('market')}: market {item.market!r} is not in markets.csv")
    return CallingBook(_items(rates), _items(tiers))


def _rates(rows: list[Row], problems: list[str]) -> Parsed[CallingRateRow]:
    parsed: Parsed[CallingRateRow] = []
    for row in rows:
        f = Fields(row, problems)
        item = CallingRateRow(
            f.day("effective_from"),
            f.text("market"),
            f.currency("currency"),
            f.decimal("rate_per_minute"),
        )
        if f.ok:
            parsed.append((row, item))
    keys = [(row, (*r.key, r.effective_from), "/".join(r.key)) for row, r in parsed]
    _unique(keys, "effective_from", problems)
    return parsed


def _tiers(rows: list[Row], problems: list[str]) -> Parsed[CallingTierRow]:
    parsed: Parsed[CallingTierRow] = []
    for row in rows:
        f = Fields(row, problems)
        upper = f.decimal("to_minutes") if row.cells["to_minutes"] else None
        item = CallingTierRow(
            f.day("effective_from"),
            f.text("market"),
            f.currency("currency"),
            f.decimal("from_minutes"),
            upper,
            f.decimal("rate_per_minute"),
        )
        if f.ok and upper is not None and item.from_minutes >= upper:
            f.fail("to_minutes", f"to_minutes {upper} must exceed from_minutes")
        if f.ok:
            parsed.append((row, item))
    groups: dict[tuple[object, ...], Parsed[CallingTierRow]] = defaultdict(list)
    for row, t in parsed:
        groups[(*t.key, t.effective_from)].append((row, t))
    for group in groups.values():
        problems.extend(_band_problems(group))
    return parsed


def _band_problems(group: Parsed[CallingTierRow]) -> list[str]:
    """Bands of one market, currency and date: from 0, contiguous, not overlapping (the last
    may end: minutes past it are unrated)."""
    ordered = sorted(group, key=lambda rt: rt[1].from_minutes)
    found = []
    if ordered[0][1].from_minutes != Decimal(0):
        found.append(f"{ordered[0][0].where('from_minutes')}: the first tier must start at 0")
    for (row_a, a), (row_b, b) in pairwise(ordered):
        where = row_b.where("from_minutes")
        if a.to_minutes is None or b.from_minutes < a.to_minutes:
            found.append(f"{where}: overlapping tier ranges with line {row_a.line}")
        elif b.from_minutes > a.to_minutes:
            found.append(f"{where}: gap in tiers: line {row_a.line} ends at {a.to_minutes}")
    return found

"""Load the billing configuration directory (``config/``) into a :class:`RateBook`.

Every file is CSV with a header row; blank lines and lines starting with ``#`` are skipped;
columns may come in any order. Every problem found is collected, each naming its place as
``file:line:column`` (column = 1-based field position), and reported at once in one
:class:`~processor.errors.SettingsError`. ``config/README.md`` documents the files.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from processor.core.policies import ALL_CATEGORIES
from processor.core.rating import (
    OTHER,
    UTC,
    MarketRow,
    Markup,
    RateBook,
    RateRow,
    TierRow,
    WabaSettings,
)
from processor.errors import SettingsError

T = TypeVar("T")
N = TypeVar("N", int, Decimal)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"\d+(\.\d+)?")
_INTEGER = re.compile(r"\d+")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)


@dataclass(frozen=True)
class Table:
    """One configuration file: its name, its columns, whether it must exist."""

    name: str
    columns: tuple[str, ...]
    required: bool
    optional: tuple[str, ...] = ()  # columns that may be left out (their cells are then "")

    @property
    def known(self) -> tuple[str, ...]:
        return self.columns + self.optional


MARKETS = Table("markets.csv", ("effective_from", "country", "market"), True)
RATES = Table(
    "rates.csv", ("effective_from", "market", "currency", "category", "rate"), True, ("source",)
)
TIERS = Table(
    "tiers.csv",
    ("effective_from", "market", "currency", "category", "from_volume", "to_volume", "rate"),
    False,
    ("source",),
)
WABAS = Table(
    "wabas.csv",
    ("waba_id", "currency", "timezone", "portfolio_id"),
    False,
    ("effective_from", "service_exempt_until", "max_price_enabled"),
)
MARKUP = Table("markup.csv", ("waba_id", "percent", "fixed_per_unit"), False)
TABLES = (MARKETS, RATES, TIERS, WABAS, MARKUP)


@dataclass(frozen=True)
class Row:
    """One data line of a file: its cells by column name, and where it stands."""

    file: str
    line: int
    cells: dict[str, str]
    positions: dict[str, int]  # column name -> 1-based field position

    def where(self, column: str) -> str:
        return f"{self.file}:{self.line}:{self.positions[column]}"


Parsed = list[tuple[Row, T]]  # each parsed item with the line it came from


# -- reading files ---------------------------------------------------------------------------


def load_ratebook(config_dir: Path) -> RateBook:
    """Read and check every file of ``config_dir``; raise :class:`SettingsError` listing all."""
    problems: list[str] = []
    rows = {t.name: read_table(config_dir, t, problems) for t in TABLES}
    markets = _markets(rows[MARKETS.name], problems)
    rates = _rates(rows[RATES.name], problems)
    tiers = _tiers(rows[TIERS.name], problems)
    wabas = _wabas(rows[WABAS.name], problems)
    markups = _markups(rows[MARKUP.name], problems)
    _check_market_names(rows[MARKETS.name], rates, tiers, problems)
    _check_waba_currencies(rows[WABAS.name], rates, problems)
    from processor.config_calls import load_calling  # it builds on this module's readers

    calling = load_calling(config_dir, rows[MARKETS.name], problems)
    if problems:
        raise SettingsError(problems)
    items = (_items(markets), _items(rates), _items(tiers), _items(wabas), _items(markups))
    return RateBook(*items, calling=calling)


def read_table(directory: Path, table: Table, problems: list[str]) -> list[Row]:
    """The data rows of one file (none if it is missing, unreadable or its header is wrong)."""
    lines = _content_lines(directory, table, problems)
    if not lines:
        return []
    header = _split(lines[0][1])
    positions = _header(table, lines[0][0], header, problems)
    if positions is None:
        return []
    width = len(header)
    return [
        row for n, line in lines[1:] if (row := _row(table, positions, width, n, line, problems))
    ]


def _content_lines(directory: Path, table: Table, problems: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are neither blank nor comments."""
    path = directory / table.name
    if not path.is_file():
        if table.required:
            problems.append(f"{table.name}: required file is missing from {directory}")
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{table.name}: cannot be read ({e})")
        return []
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if _is_content(line)]
    if not lines and table.required:
        problems.append(f"{table.name}: no header row ({', '.join(table.columns)})")
    return lines


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _split(line: str) -> list[str]:
    """The cells of one line, stripped (a line that is not CSV gives no cells)."""
    try:
        return [cell.strip() for cell in next(csv.reader([line]))]
    except csv.Error:
        return []


def _header(table: Table, n: int, header: list[str], problems: list[str]) -> dict[str, int] | None:
    """Column name -> position; None if a required column is missing."""
    positions: dict[str, int] = {}
    for position, name in enumerate(header, 1):
        if name in positions:
            problems.append(f"{table.name}:{n}:{position}: column '{name}' appears twice")
        elif name not in table.known:
            expected = ", ".join(table.known)
            problems.append(f"{table.name}:{n}:{position}: unknown column '{name}' ({expected})")
        positions.setdefault(name, position)
    missing = [c for c in table.columns if c not in positions]
    problems.extend(f"{table.name}: missing column '{c}'" for c in missing)
    return None if missing else positions


def _row(
    table: Table, positions: dict[str, int], width: int, n: int, line: str, problems: list[str]
) -> Row | None:
    cells = _split(line)
    if len(cells) != width:
        problems.append(f"{table.name}:{n}: expected {width} fields, found {len(cells)}")
        return None
    named = {name: cells[p - 1] for name, p in positions.items() if name in table.known}
    named.update({name: "" for name in table.optional if name not in named})
    return Row(table.name, n, named, positions)


# -- reading cells ---------------------------------------------------------------------------


class Fields:
    """Typed cells of one row; a bad cell notes a problem, returns a placeholder, clears ``ok``."""

    def __init__(self, row: Row, problems: list[str]) -> None:
        self.row, self.problems, self.ok = row, problems, True

    def fail(self, column: str, message: str) -> None:
        self.problems.append(f"{self.row.where(column)}: {message}")
        self.ok = False

    def text(self, column: str) -> str:
        value = self.row.cells[column]
        if not value:
            self.fail(column, f"{column} is empty")
        return value

    def day(self, column: str) -> date:
        value = self.row.cells[column]
        try:
            if _DATE.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        self.fail(column, f"{column} {value!r} is not a date (YYYY-MM-DD)")
        return date.min

    def decimal(self, column: str) -> Decimal:
        what = "a plain decimal number (like 0.0118)"
        return self._number(column, _DECIMAL, Decimal, what, Decimal(0))

    def volume(self, column: str) -> int:
        return self._number(column, _INTEGER, int, "a whole number", 0)

    def _number(
        self, column: str, pattern: re.Pattern[str], convert: Callable[[str], N], what: str, zero: N
    ) -> N:
        value = self.row.cells[column]
        if pattern.fullmatch(value):
            return convert(value)
        if value.startswith("-") and pattern.fullmatch(value[1:]):
            self.fail(column, f"{column} {value!r} must not be negative")
        else:
            self.fail(column, f"{column} {value!r} is not {what}")
        return zero

    def optional_volume(self, column: str) -> int | None:
        return self.volume(column) if self.row.cells[column] else None

    def category(self, column: str) -> str:
        value = self.row.cells[column]
        if value not in ALL_CATEGORIES:
            allowed = ", ".join(sorted(ALL_CATEGORIES))
            self.fail(column, f"unknown category {value!r} (allowed: {allowed})")
        return value

    def optional_day(self, column: str) -> date | None:
        return self.day(column) if self.row.cells[column] else None

    def flag(self, column: str) -> bool:
        """``true`` or ``false`` (any case); empty is false."""
        value = self.row.cells[column].lower()
        if value not in ("", "true", "false"):
            self.fail(column, f"{column} {self.row.cells[column]!r} is not true or false")
        return value == "true"

    def currency(self, column: str) -> str:
        value = self.row.cells[column]
        if not _CURRENCY.fullmatch(value):
            self.fail(column, f"currency {value!r} is not 3 upper-case letters (like USD)")
        return value

    def country(self, column: str) -> str:
        value = self.row.cells[column]
        if value not in _COUNTRIES:
            self.fail(column, f"country {value!r} is not a 2-letter ISO 3166 code (like BR)")
        return value

    def timezone(self, column: str) -> ZoneInfo:
        value = self.row.cells[column]
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(column, f"unknown time zone {value!r} (like Asia/Kolkata)")
            return UTC


# -- the tables ------------------------------------------------------------------------------


def _markets(rows: list[Row], problems: list[str]) -> Parsed[MarketRow]:
    parsed: Parsed[MarketRow] = []
    for row in rows:
        f = Fields(row, problems)
        item = MarketRow(f.day("effective_from"), f.country("country"), f.text("market"))
        if f.ok:
            parsed.append((row, item))
    keys = [(row, (m.country, m.effective_from), f"country {m.country}") for row, m in parsed]
    _unique(keys, "effective_from", problems)
    return parsed


def _rates(rows: list[Row], problems: list[str]) -> Parsed[RateRow]:
    parsed: Parsed[RateRow] = []
    for row in rows:
        f = Fields(row, problems)
        item = RateRow(
            f.day("effective_from"),
            f.text("market"),
            f.currency("currency"),
            f.category("category"),
            f.decimal("rate"),
        )
        if f.ok:
            parsed.append((row, item))
    keys = [(row, (*r.key, r.effective_from), "/".join(r.key)) for row, r in parsed]
    _unique(keys, "effective_from", problems)
    return parsed


def _tiers(rows: list[Row], problems: list[str]) -> Parsed[TierRow]:
    parsed: Parsed[TierRow] = []
    for row in rows:
        f = Fields(row, problems)
        item = TierRow(
            f.day("effective_from"),
            f.text("market"),
            f.currency("currency"),
            f.category("category"),
            f.volume("from_volume"),
            f.optional_volume("to_volume"),
            f.decimal("rate"),
        )
        if f.ok and item.to_volume is not None and item.from_volume >= item.to_volume:
            f.fail("to_volume", f"to_volume {item.to_volume} must exceed from_volume")
        if f.ok:
            parsed.append((row, item))
    groups: dict[tuple[object, ...], Parsed[TierRow]] = defaultdict(list)
    for row, t in parsed:
        groups[(*t.key, t.effective_from)].append((row, t))
    for group in groups.values():
        problems.extend(_tier_band_problems(group))
    return parsed


def _tier_band_problems(group: Parsed[TierRow]) -> list[str]:
    """Tiers of one key and date: from 0, contiguous, not overlapping, the last unbounded."""
    ordered = sorted(group, key=lambda rt: rt[1].from_volume)
    found: list[str] = []
    first_row, first = ordered[0]
    if first.from_volume != 0:
        found.append(f"{first_row.where('from_volume')}: the first tier must start at 0")
    for (row_a, a), (row_b, b) in pairwise(ordered):
        found.extend(_tier_pair_problem(row_a, a, row_b, b))
    last_row, last = ordered[-1]
    if last.to_volume is not None:
        found.append(f"{last_row.where('to_volume')}: the last tier must be unbounded (empty)")
    return found


def _tier_pair_problem(row_a: Row, a: TierRow, row_b: Row, b: TierRow) -> list[str]:
    where = row_b.where("from_volume")
    if a.to_volume is None:
        return [f"{where}: overlapping tier ranges: line {row_a.line} is unbounded"]
    if b.from_volume < a.to_volume:
        return [f"{where}: overlapping tier ranges: line {row_a.line} runs to {a.to_volume}"]
    if b.from_volume > a.to_volume:
        return [f"{where}: gap in tiers: line {row_a.line} ends at {a.to_volume}"]
    return []


def _wabas(rows: list[Row], problems: list[str]) -> Parsed[WabaSettings]:
    """One setting per WABA; later rows with an ``effective_from`` change its currency."""
    by_waba: dict[str, Parsed[tuple[date | None, WabaSettings]]] = defaultdict(list)
    for row in rows:
        f = Fields(row, problems)
        waba_id = f.text("waba_id")
        since = f.day("effective_from") if row.cells["effective_from"] else None
        item = WabaSettings(
            waba_id,
            f.currency("currency"),
            f.timezone("timezone"),
            row.cells["portfolio_id"] or waba_id,
            service_exempt_until=f.optional_day("service_exempt_until"),
            max_price_enabled=f.flag("max_price_enabled"),
        )
        if f.ok:
            by_waba[waba_id].append((row, (since, item)))
    return [merged for group in by_waba.values() if (merged := _waba(group, problems))]


def _waba(
    group: Parsed[tuple[date | None, WabaSettings]], problems: list[str]
) -> tuple[Row, WabaSettings] | None:
    """The rows of one WABA: the first in force (no date, or the earliest) and dated changes."""
    ordered = sorted(group, key=lambda g: g[1][0] or date.min)
    first_row, (_, first) = ordered[0]
    ok = True
    seen: dict[date | None, int] = {}
    for row, (since, item) in ordered:
        if since in seen:
            what = f"duplicate waba_id {item.waba_id!r}" if since is None else (
                f"overlapping dates: waba_id {item.waba_id} has two rows effective {since}"
            )  # fmt: skip
            problems.append(f"{row.where('waba_id')}: {what} (first on line {seen[since]})")
            ok = False
        seen.setdefault(since, row.line)
        for column, value, expected in (
            ("timezone", item.timezone, first.timezone),
            ("portfolio_id", item.portfolio_id, first.portfolio_id),
            ("service_exempt_until", item.service_exempt_until, first.service_exempt_until),
            ("max_price_enabled", item.max_price_enabled, first.max_price_enabled),
        ):
            if value != expected:
                message = f"{column} differs from line {first_row.line} (only currency is dated)"
                problems.append(f"{row.where(column)}: {message}")
                ok = False
    changes = tuple((since, item.currency) for _, (since, item) in ordered[1:] if since)
    return (first_row, replace(first, changes=changes)) if ok else None


def _markups(rows: list[Row], problems: list[str]) -> Parsed[Markup]:
    parsed: Parsed[Markup] = []
    for row in rows:
        f = Fields(row, problems)
        item = Markup(f.text("waba_id"), f.decimal("percent"), f.decimal("fixed_per_unit"))
        if f.ok:
            parsed.append((row, item))
    _unique([(row, m.waba_id, None) for row, m in parsed], "waba_id", problems)
    return parsed


# -- checks across rows and files ------------------------------------------------------------


def _unique(
    keys: Iterable[tuple[Row, Hashable, str | None]], column: str, problems: list[str]
) -> None:
    """Note every row whose key an earlier row has: a dated key (``what`` given) or an id."""
    first: dict[Hashable, int] = {}
    for row, key, what in keys:
        if key not in first:
            first[key] = row.line
            continue
        value = row.cells[column]
        if what is None:
            message = f"duplicate {column} {value!r}"
        else:
            message = f"overlapping dates: {what} has two rows effective {value}"
        problems.append(f"{row.where(column)}: {message} (first on line {first[key]})")


def _check_market_names(
    markets: list[Row], rates: Parsed[RateRow], tiers: Parsed[TierRow], problems: list[str]
) -> None:
    """A market in rates or tiers must be one that markets.csv names (or ``Other``)."""
    known = {row.cells["market"] for row in markets} | {OTHER}
    items: list[tuple[Row, RateRow | TierRow]] = [*rates, *tiers]
    for row, item in items:
        if markets and item.market not in known:
            problems.append(f"{row.where('market')}: market {item.market!r} is not in markets.csv")


def _check_waba_currencies(wabas: list[Row], rates: Parsed[RateRow], problems: list[str]) -> None:
    """Every currency a WABA row names (dated rows too) must have rates."""
    currencies = {r.currency for _, r in rates}
    for row in wabas:
        currency = row.cells["currency"]
        if rates and currency and currency not in currencies:
            message = f"no rates in currency {currency!r} in rates.csv"
            problems.append(f"{row.where('currency')}: {message}")


def _items(parsed: Parsed[T]) -> list[T]:
    return [item for _, item in parsed]

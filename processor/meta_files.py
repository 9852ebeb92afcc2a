"""Read Meta's published pricing files exactly as downloaded: the rates file (one per billing
currency), the volume-tier file and the calling-code mapping file, as CSV or as XLSX (which Meta
serves behind the same ``.csv`` links since October 2026).

Nothing here touches the disk: a file comes in as bytes and goes out as rows, or as a
:class:`MetaFileError` naming ``file:line``. Headers are found by their text, never by a fixed
number of preamble lines; ``n/a`` means "no rate" (never 0); money is kept as exact decimals;
a tier rate is read from its cell, never computed from the percentage column. The layout is
described in ``docs`` of the project's references (meta-rate-files.md).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from processor.core.policies import AUTH_INTL, AUTHENTICATION, MARKETING, SERVICE, UTILITY

# Meta's 16 billing currencies (pricing page, July 2026) and the tokens its files have used.
META_CURRENCIES = frozenset({"USD", "EUR", "GBP", "INR", "IDR", "AUD", "MXN", "AED", "ARS",
                             "CLP", "COP", "MYR", "PEN", "SAR", "SGD", "BRL"})  # fmt: skip
CURRENCY_TOKENS = {"$US": "USD", "US$": "USD", "A$": "AUD", "£": "GBP", "GBD": "GBP",
                   "₹": "INR", "RP": "IDR", "€": "EUR", "R$": "BRL"}  # fmt: skip
CATEGORY_COLUMNS = {
    "marketing": MARKETING,
    "utility": UTILITY,
    "authentication": AUTHENTICATION,
    "authentication-international": AUTH_INTL,
    "service": SERVICE,
}
IGNORED_COLUMNS = frozenset({"metabusinessagent"})  # priced per token, not per message
NOT_AVAILABLE = frozenset({"n/a", "na", ""})
UNBOUNDED = frozenset({"--", "-", "—"})
XLSX_MAGIC = b"PK\x03\x04"
_TITLE_DATE = re.compile(r"effective\s+([A-Z][a-z]+\s+\d{1,2},\s*\d{4})", re.IGNORECASE)


class MetaFileError(ValueError):
    """A file that cannot be read; ``str()`` starts with ``file:line``."""


@dataclass(frozen=True)
class Line:
    """One record of a file: where it starts (physical line, or XLSX row) and its cells."""

    number: int
    cells: list[str]

    def cell(self, i: int) -> str:
        return self.cells[i] if i < len(self.cells) else ""


@dataclass(frozen=True)
class RateCell:
    line: int
    market: str
    currency: str
    category: str
    rate: Decimal


@dataclass(frozen=True)
class TierCell:
    line: int
    market: str
    currency: str
    category: str
    from_volume: int  # exclusive, as config/tiers.csv has it (Meta's inclusive From - 1)
    to_volume: int | None
    rate: Decimal


@dataclass(frozen=True)
class MappingCell:
    line: int
    market: str
    country: str  # ISO 3166 alpha-2


@dataclass(frozen=True)
class MetaFile:
    """What one file holds: its kind, the date its title names (if any), and its rows."""

    name: str
    kind: str  # "rates" | "tiers" | "mapping"
    title_date: date | None
    rates: tuple[RateCell, ...] = ()
    tiers: tuple[TierCell, ...] = ()
    mapping: tuple[MappingCell, ...] = ()


# -- records out of bytes --------------------------------------------------------------------


def records(name: str, data: bytes) -> list[Line]:
    """The records of a CSV or XLSX file, each with the line (row) it starts on."""
    if data.startswith(XLSX_MAGIC):
        return _xlsx_records(name, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MetaFileError(f"{name}:{line}: not UTF-8 text (nor an XLSX workbook)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out, start = [], 1
    try:
        for row in reader:
            out.append(Line(start, [_clean(c) for c in row]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MetaFileError(f"{name}:{start}: not CSV ({exc})") from None
    return [line for line in out if any(line.cells)]


def _clean(cell: str) -> str:
    return " ".join(cell.replace("\r", " ").split())


def _xlsx_records(name: str, data: bytes) -> list[Line]:
    import openpyxl  # only when an XLSX comes in

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken archive
        kind = exc.__class__.__name__
        raise MetaFileError(f"{name}:1: not a readable XLSX workbook ({kind})") from None
    sheets = []
    for sheet in book.worksheets:
        rows = [
            Line(n, [_xlsx_cell(v) for v in row])
            for n, row in enumerate(sheet.iter_rows(values_only=True), 1)
        ]
        sheets.append([r for r in rows if any(r.cells)])
    book.close()
    for rows in sheets:  # the sheet whose content is a rate, tier or mapping table
        if _kind(rows) is not None:
            return rows
    return sheets[0] if sheets else []


def _xlsx_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):  # the shortest repr is the decimal Meta wrote (8.0E-4)
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return _clean(str(value))


# -- what kind of file -----------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _is_rates_header(line: Line) -> bool:
    return _norm(line.cell(0)) == "market" and _norm(line.cell(1)) == "currency"


def _is_tiers_header(line: Line) -> bool:
    return (_norm(line.cell(1)), _norm(line.cell(2)), _norm(line.cell(3))) == (
        "currency", "from", "to"
    )  # fmt: skip


def _is_mapping_header(line: Line) -> bool:
    names = [_norm(c) for c in line.cells]
    return (
        _norm(line.cell(0)) in ("markets", "market")
        and any("code" in n and "iso" not in n for n in names[1:])
        and any("iso" in n for n in names[1:])
    )


def _kind(rows: list[Line]) -> str | None:
    for line in rows:
        if _is_tiers_header(line):
            return "tiers"
        if _is_rates_header(line):
            return "rates"
        if _is_mapping_header(line):
            return "mapping"
    return None


def read(name: str, data: bytes) -> MetaFile:
    """Parse one of Meta's files; raise :class:`MetaFileError` (``file:line: ...``)."""
    rows = records(name, data)
    kind = _kind(rows)
    if kind is None:
        raise MetaFileError(
            f"{name}:1: not a Meta rates, volume-tier or calling-code file (no header row "
            "'Market,Currency,...', ',Currency,From,To,...' or 'Markets,Calling Code')"
        )
    title = title_date(rows)
    if kind == "rates":
        return MetaFile(name, kind, title, rates=tuple(_rates(name, rows)))
    if kind == "tiers":
        return MetaFile(name, kind, title, tiers=tuple(_tiers(name, rows)))
    return MetaFile(name, kind, title, mapping=tuple(_mapping(name, rows)))


def title_date(rows: list[Line]) -> date | None:
    """The date the title names ("..., effective July 1, 2026"); it can lag the content."""
    for line in rows[:3]:
        found = _TITLE_DATE.search(line.cell(0))
        if found:
            try:
                return datetime.strptime(" ".join(found.group(1).split()), "%B %d, %Y").date()
            except ValueError:
                return None
    return None


# -- cells -----------------------------------------------------------------------------------


def currency(name: str, line: int, token: str) -> str:
    value = CURRENCY_TOKENS.get(token.upper(), CURRENCY_TOKENS.get(token, token.upper()))
    if value not in META_CURRENCIES:
        known = ", ".join(sorted(META_CURRENCIES))
        raise MetaFileError(f"{name}:{line}: unknown currency {token!r} (Meta's: {known})")
    return value


def money(name: str, line: int, text: str) -> Decimal | None:
    """A rate cell: None for ``n/a``; a non-negative exact decimal otherwise."""
    if text.lower() in NOT_AVAILABLE:
        return None
    cleaned = text.replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise MetaFileError(f"{name}:{line}: rate {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise MetaFileError(f"{name}:{line}: rate {text!r} is not a non-negative number")
    return value


def volume(name: str, line: int, text: str) -> int | None:
    """A tier bound: None for ``--`` (no upper bound); thousands separators allowed."""
    if text in UNBOUNDED:
        return None
    cleaned = text.replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0 or value != value.to_integral_value():
        raise MetaFileError(f"{name}:{line}: volume {text!r} is not a whole number")
    return int(value)


# -- the rates file --------------------------------------------------------------------------


def _rates(name: str, rows: list[Line]) -> Iterator[RateCell]:
    at = next(i for i, line in enumerate(rows) if _is_rates_header(line))
    header = rows[at]
    columns: dict[int, str] = {}
    for i, title in enumerate(header.cells[2:], 2):
        key = _norm(title)
        if key in CATEGORY_COLUMNS:
            columns[i] = CATEGORY_COLUMNS[key]
        elif key and key not in IGNORED_COLUMNS:
            raise MetaFileError(f"{name}:{header.number}: unknown column {title!r}")
    for line in rows[at + 1 :]:
        market = line.cell(0)
        if not market and not line.cell(1):
            continue
        if not market:
            raise MetaFileError(f"{name}:{line.number}: no market name")
        cur = currency(name, line.number, line.cell(1))
        for i, category in columns.items():
            rate = money(name, line.number, line.cell(i))
            if rate is not None:
                yield RateCell(line.number, market, cur, category, rate)


# -- the volume-tier file --------------------------------------------------------------------


def _tiers(name: str, rows: list[Line]) -> list[TierCell]:
    at = next(i for i, line in enumerate(rows) if _is_tiers_header(line))
    groups = _tier_groups(name, rows[:at], rows[at])
    out: list[TierCell] = []
    market = ""
    for line in rows[at + 1 :]:
        if not line.cell(0) and not line.cell(1):
            continue  # trailing empty rows of a workbook
        market = line.cell(0) or market  # the name is only on a block's first row
        if not market:
            raise MetaFileError(f"{name}:{line.number}: tier row before any market name")
        cur = currency(name, line.number, line.cell(1))
        for start, category in groups:
            low = line.cell(start)
            if low.lower() in NOT_AVAILABLE:
                continue
            first = volume(name, line.number, low)
            rate = money(name, line.number, line.cell(start + 3))
            if first is None or rate is None:
                raise MetaFileError(f"{name}:{line.number}: incomplete {category} tier")
            high = volume(name, line.number, line.cell(start + 1))
            out.append(TierCell(line.number, market, cur, category,
                                max(first - 1, 0), high, rate))  # fmt: skip
    _check_bands(name, out)
    return out


def _tier_groups(name: str, above: list[Line], header: Line) -> list[tuple[int, str]]:
    """(column of From, category) for each group, found by the words above the header row."""
    for line in reversed(above):
        found = [(i, CATEGORY_COLUMNS[_norm(c)]) for i, c in enumerate(line.cells)
                 if _norm(c) in CATEGORY_COLUMNS]  # fmt: skip
        if found:
            for i, _ in found:
                if _norm(header.cell(i)) != "from" or _norm(header.cell(i + 1)) != "to":
                    raise MetaFileError(f"{name}:{header.number}: no From/To under a group")
            return found
    raise MetaFileError(f"{name}:{header.number}: no Utility/Authentication group row above")


def _check_bands(name: str, cells: list[TierCell]) -> None:
    """Each market's bands start at Meta's 0, are contiguous (From = previous To + 1) and end
    with ``--``."""
    groups: dict[tuple[str, str, str], list[TierCell]] = {}
    for c in cells:
        groups.setdefault((c.market, c.currency, c.category), []).append(c)
    for (market, _, category), bands in groups.items():
        if bands[0].from_volume != 0:
            raise MetaFileError(f"{name}:{bands[0].line}: {market} {category}: must start at 0")
        for a, b in pairwise(bands):
            if a.to_volume is None or b.from_volume != a.to_volume:
                raise MetaFileError(
                    f"{name}:{b.line}: {market} {category}: From must follow the previous To"
                )
        if bands[-1].to_volume is not None:
            raise MetaFileError(f"{name}:{bands[-1].line}: {market} {category}: last To not --")


# -- the calling-code mapping file -----------------------------------------------------------


def _mapping(name: str, rows: list[Line]) -> Iterator[MappingCell]:
    """Grouped (a group row with an empty code cell, then its countries) or flat
    (``market,country,code,iso``) forms; rows under ``Countries`` are their own market."""
    at = next(i for i, line in enumerate(rows) if _is_mapping_header(line))
    iso_column = next((i for i, c in enumerate(rows[at].cells) if "iso" in _norm(c)), None)
    if iso_column is None:
        raise MetaFileError(f"{name}:{rows[at].number}: no ISO Country Code column")
    flat = any(_norm(c) in ("country", "countryname") for c in rows[at].cells)
    group = ""
    for line in rows[at + 1 :]:
        label, code, iso = line.cell(0), line.cell(1), line.cell(iso_column)
        if flat:  # market,country,code,iso: the market on every row
            code, group = iso, label
        if not code and not iso:
            group = label  # a group row: Countries, North America, Rest of Africa, ...
            continue
        if _norm(label) == "allothercountries":
            continue
        if len(iso) != 2 or not iso.isalpha():
            raise MetaFileError(f"{name}:{line.number}: ISO country code {iso!r} is not 2 letters")
        market = label if not flat and _norm(group) in ("countries", "") else group
        yield MappingCell(line.number, market, iso.upper())

"""``wa-billing rates import``: merge Meta's downloaded pricing files into ``BILLING_CONFIG_DIR``
as dated rows.

Rates files become ``rates.csv`` rows, volume-tier files ``tiers.csv`` rows, the calling-code
mapping ``markets.csv`` rows, each with ``source`` naming the file and its SHA-256. Importing
the same file twice changes nothing. Nothing is written unless every file reads cleanly and the
merged directory loads (the processor's own checks); the files are replaced atomically.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import click

from processor.config_files import load_ratebook
from processor.core.rating import OTHER
from processor.errors import SettingsError
from processor.meta_files import MetaFile, MetaFileError, read

RATES_HEADER = ("effective_from", "market", "currency", "category", "rate", "source")
TIERS_HEADER = ("effective_from", "market", "currency", "category", "from_volume", "to_volume",
                "rate", "source")  # fmt: skip
MARKETS_HEADER = ("effective_from", "country", "market")
PICKUP = (
    "The processor reads BILLING_CONFIG_DIR at start-up: restart `wa-billing up` and the "
    "workers to price new events with these rows; run `wa-billing rerate --month YYYY-MM` for "
    "months already billed from {day} on."
)


class RatesImportError(click.ClickException):
    """An import that cannot be done; nothing was written."""


# -- a config file as lines ------------------------------------------------------------------


@dataclass
class ConfigFile:
    """One CSV of the config directory: its lines (comments kept) and its header."""

    name: str
    lines: list[str]
    header: list[str]
    removed: set[int] = field(default_factory=set)  # indices of lines dropped by the merge

    @classmethod
    def load(cls, directory: Path, name: str, header: Sequence[str]) -> ConfigFile:
        path = directory / name
        if not path.is_file():
            return cls(name, [",".join(header)], list(header))
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.lstrip().startswith("#"):
                found = [c.strip() for c in next(csv.reader([line]))]
                made = cls(name, lines, found)
                if "source" in header and "source" not in found:
                    made.add_source_column(i)
                return made
        return cls(name, [*lines, ",".join(header)], list(header))

    def add_source_column(self, at: int) -> None:
        """An older file without ``source``: add the column (empty on the existing rows)."""
        self.header.append("source")
        for i in range(at, len(self.lines)):
            line = self.lines[i]
            if line.strip() and not line.lstrip().startswith("#"):
                self.lines[i] = line + (",source" if i == at else ",")

    def rows(self) -> list[tuple[int, dict[str, str]]]:
        """(index in ``lines``, cells by column) of every data row."""
        out, seen_header = [], False
        for i, line in enumerate(self.lines):
            if i in self.removed or not line.strip() or line.lstrip().startswith("#"):
                continue
            if not seen_header:
                seen_header = True
                continue
            cells = [c.strip() for c in next(csv.reader([line]))]
            out.append((i, dict(zip(self.header, cells, strict=False))))
        return out

    def format(self, values: dict[str, str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([values.get(c, "") for c in self.header])
        return buffer.getvalue()

    def text(self) -> str:
        return "\n".join(x for i, x in enumerate(self.lines) if i not in self.removed) + "\n"


# -- the plan --------------------------------------------------------------------------------


@dataclass
class Plan:
    """What an import adds or changes, file by file, and what it noticed."""

    files: dict[str, ConfigFile] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    earliest: date | None = None


def source_of(name: str, data: bytes) -> str:
    return f"Meta file {Path(name).name} sha256:{hashlib.sha256(data).hexdigest()}"


def normal(name: str) -> str:
    """Market names compared without case, spacing or ``&``/``and`` differences."""
    return " ".join(re.sub(r"&", " and ", name).lower().split())


def plan_import(
    directory: Path, files: Sequence[tuple[str, bytes]], effective: date | None
) -> Plan:
    """Read every file and work out the rows to add or change; raise on any problem."""
    plan = Plan()
    parsed: list[tuple[MetaFile, str, date]] = []
    for name, data in files:
        try:
            meta = read(name, data)
        except MetaFileError as exc:
            raise RatesImportError(str(exc)) from None
        day = effective or meta.title_date
        if day is None:
            message = "its title names no date: pass --effective YYYY-MM-DD"
            raise RatesImportError(f"{name}:1: {message}")
        if effective is None:
            plan.notes.append(f"{name}: effective {day}, the date its title names")
        elif meta.title_date and meta.title_date != effective:
            plan.notes.append(f"{name}: --effective {effective} (its title says {meta.title_date})")
        parsed.append((meta, source_of(name, data), day))
        plan.earliest = min(day, plan.earliest or day)
    markets = ConfigFile.load(directory, "markets.csv", MARKETS_HEADER)
    for meta, _, day in parsed:
        if meta.kind == "mapping":
            plan.files["markets.csv"] = markets
            _merge_mapping(plan, markets, meta, day)
    known = {normal(r["market"]): r["market"] for _, r in markets.rows() if r.get("market")}
    known.setdefault(normal(OTHER), OTHER)
    for meta, source, day in parsed:
        if meta.kind == "rates":
            _merge_rates(plan, directory, meta, source, day, known)
        elif meta.kind == "tiers":
            _merge_tiers(plan, directory, meta, source, day, known)
    return plan


def _market(meta: MetaFile, line: int, name: str, known: dict[str, str]) -> str:
    found = known.get(normal(name))
    if found is None:
        listed = ", ".join(sorted(set(known.values())))
        raise RatesImportError(f"{meta.name}:{line}: unknown market {name!r} (known: {listed})")
    return found


def _one_currency(meta: MetaFile, currencies: Iterable[tuple[int, str]]) -> None:
    first: tuple[int, str] | None = None
    for line, currency in currencies:
        if first is None:
            first = (line, currency)
        elif currency != first[1]:
            raise RatesImportError(
                f"{meta.name}:{line}: currency {currency} in a {first[1]} file (line {first[0]})"
            )


def _merge_rates(
    plan: Plan, directory: Path, meta: MetaFile, source: str, day: date, known: dict[str, str]
) -> None:
    target = plan.files.setdefault("rates.csv", ConfigFile.load(directory, "rates.csv",
                                                                RATES_HEADER))  # fmt: skip
    _one_currency(meta, ((c.line, c.currency) for c in meta.rates))
    existing = {(r["effective_from"], r["market"], r["currency"], r["category"]): (i, r)
                for i, r in target.rows()}  # fmt: skip
    for cell in meta.rates:
        market = _market(meta, cell.line, cell.market, known)
        key = (day.isoformat(), market, cell.currency, cell.category)
        row = dict(zip(RATES_HEADER, (*key, format(cell.rate, "f"), source), strict=True))
        _put(plan, target, existing.get(key), row, "rate")


def _put(
    plan: Plan,
    target: ConfigFile,
    found: tuple[int, dict[str, str]] | None,
    row: dict[str, str],
    value: str,
) -> None:
    """Add ``row``, or change the existing row of its key when its ``value`` differs."""
    text = target.format(row)
    if found is None:
        target.lines.append(text)
        plan.added.append(f"{target.name}: add {text}")
        return
    i, old = found
    if Decimal(old[value] or "-1") == Decimal(row[value]):
        return
    target.lines[i] = text
    plan.changed.append(f"{target.name}: change {text} (was {old[value]})")


def _merge_tiers(
    plan: Plan, directory: Path, meta: MetaFile, source: str, day: date, known: dict[str, str]
) -> None:
    target = plan.files.setdefault("tiers.csv", ConfigFile.load(directory, "tiers.csv",
                                                                TIERS_HEADER))  # fmt: skip
    _one_currency(meta, ((c.line, c.currency) for c in meta.tiers))
    groups: dict[tuple[str, str, str, str], list[tuple[int, dict[str, str]]]] = {}
    for i, r in target.rows():
        key = (r["effective_from"], r["market"], r["currency"], r["category"])
        groups.setdefault(key, []).append((i, r))
    new: dict[tuple[str, str, str, str], list[dict[str, str]]] = {}
    for cell in meta.tiers:
        market = _market(meta, cell.line, cell.market, known)
        key = (day.isoformat(), market, cell.currency, cell.category)
        to = "" if cell.to_volume is None else str(cell.to_volume)
        values = (*key, str(cell.from_volume), to, format(cell.rate, "f"), source)
        new.setdefault(key, []).append(dict(zip(TIERS_HEADER, values, strict=True)))
    for key, rows in new.items():
        old = groups.get(key, [])
        if [_band(r) for _, r in old] == [_band(r) for r in rows]:
            continue
        target.removed.update(i for i, _ in old)
        texts = [target.format(r) for r in rows]
        target.lines.extend(texts)
        verb = "change" if old else "add"
        (plan.changed if old else plan.added).extend(f"tiers.csv: {verb} {t}" for t in texts)


def _band(row: dict[str, str]) -> tuple[int, str, Decimal]:
    return int(row["from_volume"]), row["to_volume"], Decimal(row["rate"])


def _merge_mapping(plan: Plan, markets: ConfigFile, meta: MetaFile, day: date) -> None:
    """Countries whose market on ``day`` differs from Meta's mapping get a dated row."""
    rows = markets.rows()
    known = {normal(r["market"]): r["market"] for _, r in rows if r.get("market")}
    in_force: dict[str, tuple[str, str]] = {}
    at: dict[tuple[str, str], int] = {}
    for i, r in sorted(rows, key=lambda ir: ir[1]["effective_from"]):
        at[(r["effective_from"], r["country"])] = i
        if r["effective_from"] <= day.isoformat():
            in_force[r["country"]] = (r["effective_from"], r["market"])
    mapped = set()
    for cell in meta.mapping:
        market = known.get(normal(cell.market), cell.market)
        if normal(market) not in known:
            plan.notes.append(f"{meta.name}:{cell.line}: new market {market!r}")
            known[normal(market)] = market
        mapped.add(cell.country)
        if in_force.get(cell.country, ("", None))[1] == market:
            continue
        row = {"effective_from": day.isoformat(), "country": cell.country, "market": market}
        text = markets.format(row)
        where = at.get((day.isoformat(), cell.country))
        if where is None:
            markets.lines.append(text)
            plan.added.append(f"markets.csv: add {text}")
        else:
            was = markets.lines[where]
            markets.lines[where] = text
            plan.changed.append(f"markets.csv: change {text} (was {was})")
    unmapped = sorted(c for c, (_, m) in in_force.items() if c not in mapped and m != OTHER)
    if unmapped:
        plan.notes.append(f"{meta.name}: not in Meta's mapping (kept): {', '.join(unmapped)}")


# -- writing ---------------------------------------------------------------------------------


def write(directory: Path, plan: Plan) -> None:
    """Check the merged directory loads, then replace the changed files atomically."""
    changed = {n: f for n, f in plan.files.items() if _differs(directory, f)}
    if not changed:
        return
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        for item in directory.iterdir():
            if item.is_file() and item.suffix == ".csv":
                shutil.copy2(item, staging / item.name)
        for name, f in changed.items():
            (staging / name).write_text(f.text(), encoding="utf-8")
        try:
            load_ratebook(staging)
        except SettingsError as exc:
            raise RatesImportError(f"the merged configuration would not load: {exc}") from None
        for name in changed:
            fd, part = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
            os.close(fd)
            shutil.copyfile(staging / name, part)
            os.replace(part, directory / name)


def _differs(directory: Path, f: ConfigFile) -> bool:
    path = directory / f.name
    return not path.is_file() or path.read_text(encoding="utf-8-sig") != f.text()


def run(directory: Path, paths: Sequence[Path], effective: date | None, dry_run: bool) -> list[str]:
    """Import ``paths``; return the lines to show the operator."""
    files = []
    for path in paths:
        try:
            files.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise RatesImportError(f"{path}:0: cannot be read ({exc.strerror})") from None
    plan = plan_import(directory, files, effective)
    out = [*plan.notes, *plan.added, *plan.changed]
    counts = f"{len(plan.added)} rows to add, {len(plan.changed)} to change"
    if dry_run:
        return [*out, f"dry run: {counts}; nothing written"]
    if not plan.added and not plan.changed:
        return [*plan.notes, "nothing to change: these files are already imported"]
    write(directory, plan)
    done = f"{len(plan.added)} rows added, {len(plan.changed)} changed in {directory}"
    return [*out, done, PICKUP.format(day=plan.earliest)]


@click.group()
def rates() -> None:
    """Meta's rate cards: import the files Meta publishes."""


@rates.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--effective", default=None, help="The date the card takes effect, YYYY-MM-DD.")
@click.option("--dry-run", is_flag=True, help="Print the rows it would add or change.")
def import_command(files: tuple[Path, ...], effective: str | None, dry_run: bool) -> None:
    """Merge Meta's rates, volume-tier and calling-code files (CSV or XLSX) into
    BILLING_CONFIG_DIR as dated rows."""
    from processor.settings import load_settings

    day = None
    if effective is not None:
        try:
            day = date.fromisoformat(effective)
        except ValueError:
            message = f"{effective!r} is not YYYY-MM-DD"
            raise click.BadParameter(message, param_hint="--effective") from None
    try:
        directory = load_settings(os.environ, web=False).config_dir
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    for line in run(directory, files, day, dry_run):
        click.echo(line)

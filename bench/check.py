"""After a run: do the processor's records equal what the generated traffic must produce?

Compares, message by message, the latest version of every record (through the processor's own
``Queries``) with the expectation of ``bench.traffic``: the set of charged messages, and for
each its WABA, market, category, billable flag, free reason and charge time. Then the usage
counters against the records they summarize, the total cost against the rate card, and that
nothing is left pending, quarantined or marked as a discrepancy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bench.traffic import MONTH, Expected
from processor.context import Context

MAX_SHOWN = 5


@dataclass
class CheckResult:
    ok: bool
    records: int
    expected: int
    corrections: int  # records at version > 1 (a late status moved the charge time...)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return f"OK ({self.records} records = expected)"
        return "FAIL: " + "; ".join(self.problems[:8])


def check(ctx: Context, expected: Expected) -> CheckResult:
    records = _records(ctx)
    problems = _compare_records(records, expected)
    problems += _compare_usage(ctx, expected)
    problems += _leftovers(ctx, records, expected)
    corrections = sum(1 for r in records.values() if int(r["version"]) > 1)
    return CheckResult(not problems, len(records), len(expected.records), corrections, problems)


def _records(ctx: Context) -> dict[str, dict[str, Any]]:
    """Live (not void) records by wamid; a wamid seen twice is reported as a duplicate."""
    out: dict[str, dict[str, Any]] = {}
    for waba, month in ctx.queries.months():
        for record in ctx.queries.records(waba, month):
            if record.get("void"):
                continue
            record["_dup"] = record["wamid"] in out
            out.setdefault(record["wamid"], record)
    return out


def _compare_records(records: dict[str, dict[str, Any]], expected: Expected) -> list[str]:
    problems = []
    missing = expected.records.keys() - records.keys()
    extra = records.keys() - expected.records.keys()
    if missing:
        problems.append(f"{len(missing)} delivered messages have no record, e.g. {_few(missing)}")
    if extra:
        problems.append(f"{len(extra)} records for messages not delivered, e.g. {_few(extra)}")
    dups = [w for w, r in records.items() if r["_dup"]]
    if dups:
        problems.append(f"{len(dups)} messages have two records, e.g. {_few(dups)}")
    wrong = []
    for wamid in expected.records.keys() & records.keys():
        got = _as_expected(records[wamid])
        if got != expected.records[wamid]:
            wrong.append(f"{wamid}: got {got}, expected {expected.records[wamid]}")
    if wrong:
        problems.append(f"{len(wrong)} records differ: " + " | ".join(wrong[:MAX_SHOWN]))
    return problems


def _as_expected(record: dict[str, Any]) -> tuple[str, str, str, bool, str | None, int]:
    charge = datetime.strptime(record["charge_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (
        record["waba_id"],
        record["market"],
        record["category"],
        bool(record["billable"]),
        record["free_reason"],
        int(charge.timestamp()),
    )


def _compare_usage(ctx: Context, expected: Expected) -> list[str]:
    """Usage counters (per WABA and month) against the expected units, and their cost."""
    problems = []
    want = expected.usage()
    got: Counter[tuple[str, str, str, bool, str | None]] = Counter()
    for waba in {key[0] for key in want} | {w for w, _ in ctx.queries.months()}:
        usage = ctx.queries.usage(waba, MONTH, ctx.ratebook.waba(waba).currency)
        for line in usage["lines"]:
            key = (waba, line["market"], line["category"], line["billable"], line["free_reason"])
            got[key] += line["count"]
        cost = _expected_cost(ctx, waba, expected)
        if Decimal(usage["total_cost"]) != cost:
            problems.append(f"WABA {waba}: total_cost {usage['total_cost']}, expected {cost}")
    if +got != +want:
        diff = {k: (got[k], want[k]) for k in got.keys() | want.keys() if got[k] != want[k]}
        problems.append(f"usage counters differ (got, expected): {_few(diff.items())}")
    return problems


def _expected_cost(ctx: Context, waba: str, expected: Expected) -> Decimal:
    """The rate card's price of the WABA's billable units (all in the first volume tier)."""
    total = Decimal(0)
    book = ctx.ratebook
    currency = book.waba(waba).currency
    for rec_waba, market, category, billable, _, charge in expected.records.values():
        if rec_waba != waba or not billable:
            continue
        day = datetime.fromtimestamp(charge, UTC).date()
        tiers = book.tiers(market, category, currency, day)
        rate = tiers[0].rate if tiers else book.rate(market, category, currency, day)
        total += rate or Decimal(0)
    return total


def _leftovers(ctx: Context, records: dict[str, dict[str, Any]], expected: Expected) -> list[str]:
    problems = []
    pending = {p["wamid"] for p in ctx.queries.pending()}
    if pending != expected.pending:
        problems.append(f"pending {len(pending)} messages, expected {len(expected.pending)}")
    quarantined = ctx.redis.xlen(ctx.keys.quarantine)
    if quarantined:
        problems.append(f"{quarantined} items quarantined")
    discrepancies = [w for w, r in records.items() if r.get("discrepancy")]
    if discrepancies:
        problems.append(f"{len(discrepancies)} records disagree with Meta's pricing fields")
    return problems


def _few(items: Any) -> str:
    return ", ".join(str(x) for x in list(items)[:MAX_SHOWN])

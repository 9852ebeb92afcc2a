"""Usage reports and record exports for the command line."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from processor.context import Context

USAGE_COLUMNS = (
    "category", "market", "billable", "free_reason", "count", "cost", "billed_cost", "currency",
    "minutes",  # call lines: billed minutes (empty for messages)
)  # fmt: skip
RECORD_COLUMNS = (
    "record_id", "version", "waba_id", "phone_number_id", "user_id", "country",
    "country_source", "market", "category", "kind", "pricing_model", "policy", "charge_time",
    "expires_at", "billing_month", "billable", "free_reason", "rate", "billed_rate", "tier",
    "currency", "cost", "billed_cost", "source", "meta_conversation_id", "wamid", "discrepancy",
    "void", "group_id", "estimate", "pricing_subtype",
)  # fmt: skip
# The CSV export's columns: the record columns (also PostgreSQL's), then a call's own fields
# (empty for messages; in PostgreSQL they are kept in `extra`).
CALL_COLUMNS = (
    "direction", "call_id", "call_status", "start_time", "end_time", "duration_s", "pulses",
    "billed_minutes", "tier_minutes_after",
)  # fmt: skip
EXPORT_COLUMNS = RECORD_COLUMNS + CALL_COLUMNS


def print_usage(usage: dict[str, Any], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json.dumps(usage, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=USAGE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(usage["lines"])
    else:
        _table(usage, out)


def _has_calls(usage: dict[str, Any]) -> bool:
    return any("minutes" in line for line in usage["lines"])


def _table(usage: dict[str, Any], out: IO[str]) -> None:
    columns = [c for c in USAGE_COLUMNS if c != "minutes" or _has_calls(usage)]
    rows = [[str(line[c] if line.get(c) is not None else "-") for c in columns]
            for line in usage["lines"]]  # fmt: skip
    header = list(columns)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]  # fmt: skip
    out.write(f"WABA {usage['waba_id']}  month {usage['month']}  currency {usage['currency']}\n")
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "\n")
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + "\n")
    totals = usage.get("totals") or {usage["currency"]: {
        "cost": usage["total_cost"], "billed_cost": usage["total_billed_cost"],
        "units": usage["units"], "unrated_units": usage["unrated_units"]}}  # fmt: skip
    for currency, t in totals.items():  # one line per currency: never added across them
        out.write(
            f"units {t['units']}  total cost {t['cost']} {currency}"
            f"  billed {t['billed_cost']} {currency}"
            + (f"  unrated units {t['unrated_units']}" if t["unrated_units"] else "")
            + "\n"
        )
    for item in usage.get("unrated", []):
        out.write(
            f"unrated: {item['count']} {item['category']} in {item['market']} "
            f"({item['currency']}): no rate in the rate card\n"
        )


def export_totals(ctx: Context, month: str, waba_id: str | None) -> list[str]:
    """One line per WABA, month and currency: what the exported records add up to."""
    lines = []
    for waba, m in ctx.queries.months(waba_id, month):
        usage = ctx.queries.usage(waba, m, ctx.ratebook.waba(waba).currency)
        for currency, t in usage["totals"].items():
            lines.append(
                f"WABA {waba} {m}: total cost {t['cost']} {currency}, billed "
                f"{t['billed_cost']} {currency}, {t['units']} units"
                + (f" ({t['unrated_units']} unrated)" if t["unrated_units"] else "")
            )
    return lines


def export_records(ctx: Context, month: str, waba_id: str | None, fmt: str, out: IO[str]) -> int:
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
    count = 0
    from processor.sinks.archive import Archive, from_redis_or_postgres

    months = set(ctx.queries.months(waba_id, month))
    if ctx.settings.postgres_url:  # months Redis no longer holds are read from PostgreSQL
        months |= set(Archive(ctx.settings.postgres_url).months(waba_id, month))
    for waba, m in sorted(months):
        source: Any = from_redis_or_postgres(ctx, waba, m) or ctx.queries
        for record in source.records(waba, m):
            if writer is not None:
                writer.writerow(record)
            else:
                out.write(json.dumps(record) + "\n")
            count += 1
    return count

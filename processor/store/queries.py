"""Reading the ledger back: usage per month, records, pending messages, discrepancies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import redis

from processor.store import codec
from processor.store.keys import Keys
from processor.store.ops import INTERNAL_FIELDS, money

NO_DISCREPANCY = b'"discrepancy":null'  # how the apply script (cjson) writes "none"
USAGE_LINE_FIELDS = (
    "category",
    "market",
    "billable",
    "free_reason",
    "tier",
    "rate",
    "billed_rate",
    "currency",
)


def public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in INTERNAL_FIELDS}


class Queries:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis, self.keys = client, keys

    # -- usage ---------------------------------------------------------------------------------

    def usage(self, waba_id: str, month: str, currency: str) -> dict[str, Any]:
        """Totals per category x market x billable/free reason, in exact decimals."""
        counters = codec.mapping(self.redis.hgetall(self.keys.usage(waba_id, month)))
        return summarize(waba_id, month, currency, counters)

    # -- records -------------------------------------------------------------------------------

    def records_page(
        self, waba_id: str, month: str, cursor: int = 0, limit: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the month's records (latest version of each); cursor 0 ends the scan."""
        cursor, raw = self.redis.hscan(self.keys.records(waba_id, month), cursor, count=limit)
        records = [public(json.loads(v)) for v in codec.mapping(raw).values()]
        records.sort(key=lambda r: (r["charge_time"], r["record_id"]))
        return records, int(cursor)

    def records(self, waba_id: str, month: str) -> Iterator[dict[str, Any]]:
        for _, raw in self.redis.hscan_iter(self.keys.records(waba_id, month), count=500):
            yield public(json.loads(raw))

    def record_count(self, waba_id: str, month: str) -> int:
        return int(self.redis.hlen(self.keys.records(waba_id, month)))

    def months(self, waba_id: str | None = None, month: str | None = None) -> list[tuple[str, str]]:
        """The (waba_id, month) pairs with records, optionally filtered."""
        members = self.redis.smembers(self.keys.months)
        pairs = sorted(tuple(codec.text(m).split("|", 1)) for m in members)
        return [
            (w, m)
            for w, m in pairs
            if (waba_id is None or w == waba_id) and (month is None or m == month)
        ]

    def discrepancies(self, waba_id: str, month: str) -> list[dict[str, Any]]:
        found = []
        for _, raw in self.redis.hscan_iter(self.keys.records(waba_id, month), count=1000):
            if NO_DISCREPANCY in raw:  # most records: skip them without decoding
                continue
            record = public(json.loads(raw))
            if record.get("discrepancy"):
                found.append(record)
        return sorted(found, key=lambda r: (r["charge_time"], r["record_id"]))

    # -- pending -------------------------------------------------------------------------------

    def pending(self, waba_id: str | None = None) -> list[dict[str, Any]]:
        if waba_id is not None:
            keys = [self.keys.pending(waba_id)]
        else:
            keys = list(self.redis.scan_iter(self.keys.pending_pattern, count=500))
        items = [json.loads(v) for key in keys for v in self.redis.hvals(key)]
        return sorted(items, key=lambda p: (p["charge_time"], p["wamid"]))


def summarize(
    waba_id: str, month: str, currency: str, counters: dict[bytes, bytes]
) -> dict[str, Any]:
    lines: dict[tuple[Any, ...], dict[str, Any]] = {}
    currencies: set[str] = set()
    unrated = 0
    for raw_line, raw_count in counters.items():
        count = int(raw_count)
        if count == 0:
            continue
        f = dict(zip(USAGE_LINE_FIELDS, raw_line.decode().split("|"), strict=True))
        billable = f["billable"] == "1"
        key = (f["category"], f["market"], billable, f["free_reason"] or None, f["currency"])
        line = lines.setdefault(key, _empty_line(*key))
        line["count"] += count
        currencies.add(f["currency"])
        if billable and f["rate"] == "":
            unrated += count
        elif billable:
            line["cost"] += count * Decimal(f["rate"])
            line["billed_cost"] += count * Decimal(f["billed_rate"] or f["rate"])
    out = sorted(lines.values(), key=lambda x: (x["category"], x["market"], not x["billable"]))
    return {
        "waba_id": waba_id,
        "month": month,
        "currency": currency if len(currencies) <= 1 else "mixed",
        "total_cost": money(sum((x["cost"] for x in out), Decimal(0))),
        "total_billed_cost": money(sum((x["billed_cost"] for x in out), Decimal(0))),
        "units": sum(x["count"] for x in out),
        "unrated_units": unrated,
        "lines": [
            {**x, "cost": money(x["cost"]), "billed_cost": money(x["billed_cost"])} for x in out
        ],
    }


def _empty_line(
    category: str, market: str, billable: bool, free_reason: str | None, currency: str
) -> dict[str, Any]:
    return {
        "category": category,
        "market": market,
        "billable": billable,
        "free_reason": free_reason,
        "currency": currency,
        "count": 0,
        "cost": Decimal(0),
        "billed_cost": Decimal(0),
    }

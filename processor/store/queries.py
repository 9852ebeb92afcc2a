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
MINUTES = b"m|"  # a call line's minutes, in pulses (tenths of a minute), beside its count


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

    def tags(self) -> list[str]:
        """The hash tags holding ledger state: [""] standalone; the registry on a cluster."""
        if not self.keys.cluster:
            return [""]
        return sorted(codec.text(t) for t in self.redis.smembers(self.keys.tags))

    def feeds(self) -> list[str]:
        """The records feed streams: one standalone, one per tag on a cluster (a reader of
        every record version reads each, e.g. with one consumer group per stream)."""
        return [self.keys.feed_of(tag) for tag in self.tags()]

    def months(self, waba_id: str | None = None, month: str | None = None) -> list[tuple[str, str]]:
        """The (waba_id, month) pairs with records, optionally filtered."""
        if waba_id is not None and self.keys.cluster:
            tags = [self.keys.tag(waba_id)]  # one index to read
        else:
            tags = self.tags()
        members = {m for tag in tags for m in self.redis.smembers(self.keys.months_of(tag))}
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
        elif self.keys.cluster:  # each primary scanned in turn, for the tagged pattern
            keys = list(self.redis.scan_iter(self.keys.pending_pattern_cluster, count=500))
        else:
            keys = list(self.redis.scan_iter(self.keys.pending_pattern, count=500))
        items = [json.loads(v) for key in keys for v in self.redis.hvals(key)]
        return sorted(items, key=lambda p: (p["charge_time"], p["wamid"]))


def summarize(
    waba_id: str, month: str, currency: str, counters: dict[bytes, bytes]
) -> dict[str, Any]:
    """Lines per category x market x billable/free reason x currency, totals per currency.

    ``total_cost``/``total_billed_cost`` are the month's totals when it has one currency; a
    month with two (a WABA whose currency changed) has them per currency in ``totals`` only
    (amounts in different currencies are never added). Units with no rate are counted in
    ``unrated_units`` and listed in ``unrated``."""
    lines: dict[tuple[Any, ...], dict[str, Any]] = {}
    unrated: dict[tuple[str, str, str], int] = {}
    pulses = {k[len(MINUTES) :]: int(v) for k, v in counters.items() if k.startswith(MINUTES)}
    for raw_line, raw_count in counters.items():
        count = int(raw_count)
        if count == 0 or raw_line.startswith(MINUTES):
            continue
        f = dict(zip(USAGE_LINE_FIELDS, raw_line.decode().split("|"), strict=True))
        billable = f["billable"] == "1"
        key = (f["category"], f["market"], billable, f["free_reason"] or None, f["currency"])
        line = lines.setdefault(key, _empty_line(*key))
        line["count"] += count
        # calls: cost is minutes x rate (pulses x rate / 10); messages: count x rate
        amount = Decimal(count)
        if raw_line in pulses:
            amount = Decimal(pulses[raw_line]) / 10
            line["minutes"] = line.get("minutes", Decimal(0)) + amount
        if billable and f["rate"] == "":
            where = (f["category"], f["market"], f["currency"])
            unrated[where] = unrated.get(where, 0) + count
            line["unrated"] += count
        elif billable:
            line["cost"] += amount * Decimal(f["rate"])
            line["billed_cost"] += amount * Decimal(f["billed_rate"] or f["rate"])
    out = sorted(lines.values(), key=lambda x: (x["category"], x["market"], not x["billable"]))
    totals = _totals(out)
    single = len(totals) <= 1
    only = next(iter(totals.values()), None)
    return {
        "waba_id": waba_id,
        "month": month,
        "currency": next(iter(totals), currency) if single else "mixed",
        "total_cost": (only["cost"] if only else "0") if single else None,
        "total_billed_cost": (only["billed_cost"] if only else "0") if single else None,
        "units": sum(x["count"] for x in out),
        "unrated_units": sum(unrated.values()),
        "totals": totals,
        "unrated": [
            {"category": c, "market": m, "currency": cur, "count": n}
            for (c, m, cur), n in sorted(unrated.items())
        ],
        "lines": [_public_line(x) for x in out],
    }


def _public_line(line: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in line.items() if k != "unrated"}
    if "minutes" in line:  # a call line: its billed minutes, one decimal
        shown["minutes"] = money(line["minutes"].quantize(Decimal("0.1")))
    return {**shown, "cost": money(line["cost"]), "billed_cost": money(line["billed_cost"])}


def _totals(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per currency: cost, billed cost (decimal strings), units, unrated units."""
    sums: dict[str, dict[str, Any]] = {}
    for x in lines:
        t = sums.setdefault(x["currency"], {"cost": Decimal(0), "billed_cost": Decimal(0),
                                            "units": 0, "unrated_units": 0})  # fmt: skip
        t["cost"] += x["cost"]
        t["billed_cost"] += x["billed_cost"]
        t["units"] += x["count"]
        t["unrated_units"] += x["unrated"]
    return {
        cur: {**t, "cost": money(t["cost"]), "billed_cost": money(t["billed_cost"])}
        for cur, t in sorted(sums.items())
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
        "unrated": 0,
    }

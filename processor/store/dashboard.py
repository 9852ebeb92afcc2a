"""What the cost dashboard shows, read through the same queries as the API.

Totals, markets, categories and free reasons come from :meth:`Queries.usage` (``/v1/usage``):
for one WABA it *is* that answer; for every WABA the same :func:`summarize` adds up their
usage counters. Days and business numbers come from the month's breakdown counters
(``{p}:daily:{waba}:{month}``, kept by the apply script beside the usage counters), each group
summarised by the same :func:`summarize`. Allowances and tiers are the bucket counts. Nothing
scans the month's records, so a page costs the same for a thousand records or a million.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import redis

from processor.core.policies import PHONE_ALLOWANCE, TIERED_CATEGORIES, VOLUME_TIER, PolicyBook
from processor.core.projection import days_of, elapsed, month_bounds, project
from processor.core.rating import RateBook
from processor.store import codec
from processor.store.keys import Keys
from processor.store.ops import money
from processor.store.queries import Queries, summarize

ALL = "all"


class Dashboard:
    def __init__(self, client: redis.Redis, keys: Keys, ratebook: RateBook, book: PolicyBook):
        self.redis, self.keys, self.ratebook, self.book = client, keys, ratebook, book
        self.queries = Queries(client, keys)

    def wabas(self, month: str | None = None) -> list[str]:
        return sorted({w for w, _ in self.queries.months(None, month)})

    def months(self) -> list[str]:
        return sorted({m for _, m in self.queries.months()}, reverse=True)

    def view(self, waba: str | None, month: str, now: int) -> dict[str, Any]:
        """Everything the page shows for one WABA (or every WABA: ``None``) and month."""
        wabas = [waba] if waba else self.wabas(month)
        usage = self._usage(waba, wabas, month)
        breakdown = self._breakdown(wabas, month)
        tz = self.ratebook.waba(waba).timezone if waba else self.ratebook.waba("").timezone
        share = elapsed(month, now, tz)
        cost, billed = Decimal(usage["total_cost"]), Decimal(usage["total_billed_cost"])
        billable = sum(x["count"] for x in usage["lines"] if x["billable"])
        per_day = self._per_day(breakdown, month, tz, usage["currency"])
        return {
            "waba_id": waba or ALL,
            "month": month,
            "wabas": wabas,
            "currency": usage["currency"],
            "usage": usage,
            "summary": {
                "total_cost": usage["total_cost"],
                "total_billed_cost": usage["total_billed_cost"],
                "margin": money(billed - cost),
                "units": usage["units"],
                "billable_units": billable,
                "free_units": usage["units"] - billable,
                "unrated_units": usage["unrated_units"],
                "month_elapsed": format(round(share * 100, 1), "f"),
                "projected_cost": money(project(cost, share)),
                "projected_billed_cost": money(project(billed, share)),
                "pending_units": self._pending(wabas, month),
                "discrepancy_units": sum(d["discrepancies"] for d in per_day),
                "breakdown_units": sum(d["units"] for d in per_day),
            },
            "days": per_day,
            "categories": _group(usage["lines"], "category"),
            "markets": _group(usage["lines"], "market"),
            "free_reasons": _free(usage["lines"]),
            "numbers": self._numbers(breakdown, usage["currency"], month),
            "per_waba": self._per_waba(wabas, month) if waba is None else [],
            "tiers": self._tiers(wabas, usage["lines"], month),
            "allowances": self._allowances(wabas, breakdown, month, tz),
        }

    # -- usage -------------------------------------------------------------------------------

    def _usage(self, waba: str | None, wabas: list[str], month: str) -> dict[str, Any]:
        if waba is not None:  # exactly /v1/usage
            return self.queries.usage(waba, month, self.ratebook.waba(waba).currency)
        counters: dict[bytes, int] = defaultdict(int)
        for w in wabas:
            for line, n in codec.mapping(self.redis.hgetall(self.keys.usage(w, month))).items():
                counters[line] += int(n)
        currencies = {self.ratebook.waba(w).currency for w in wabas}
        currency = currencies.pop() if len(currencies) == 1 else "mixed"
        raw = {k: str(v).encode() for k, v in counters.items()}
        return summarize(ALL, month, currency, raw)

    def _per_waba(self, wabas: list[str], month: str) -> list[dict[str, Any]]:
        rows = []
        for w in wabas:
            u = self.queries.usage(w, month, self.ratebook.waba(w).currency)
            rows.append(
                {
                    "waba_id": w,
                    "currency": u["currency"],
                    "units": u["units"],
                    "total_cost": u["total_cost"],
                    "total_billed_cost": u["total_billed_cost"],
                }
            )
        return rows

    # -- the breakdown by day and number -------------------------------------------------------

    def _breakdown(self, wabas: list[str], month: str) -> list[tuple[str, str, bool, bytes, int]]:
        """(day, phone, discrepancy, usage line, count) of every breakdown counter."""
        pipe = self.redis.pipeline(transaction=False)
        for w in wabas:
            pipe.hgetall(self.keys.usage_daily(w, month))
        out = []
        for reply in pipe.execute():
            for field, n in codec.mapping(reply).items():
                day, phone, flag, line = field.split(b"|", 3)
                if int(n):
                    out.append((day.decode(), phone.decode(), flag == b"1", line, int(n)))
        return out

    def _per_day(
        self, breakdown: list[tuple[str, str, bool, bytes, int]], month: str, tz: Any, currency: str
    ) -> list[dict[str, Any]]:
        groups: dict[str, dict[bytes, int]] = defaultdict(lambda: defaultdict(int))
        flagged: dict[str, int] = defaultdict(int)
        for day, _, flag, line, n in breakdown:
            groups[day][line] += n
            flagged[day] += n if flag else 0
        days = []
        for day in sorted(set(days_of(month, tz)) | set(groups)):
            u = summarize(
                ALL, month, currency, {k: str(v).encode() for k, v in groups[day].items()}
            )
            by_category = {c["category"]: c["billed_cost"] for c in _group(u["lines"], "category")}
            days.append(
                {
                    "day": day,
                    "units": u["units"],
                    "cost": u["total_cost"],
                    "billed_cost": u["total_billed_cost"],
                    "by_category": by_category,
                    "discrepancies": flagged[day],
                }
            )
        return days

    def _numbers(
        self, breakdown: list[tuple[str, str, bool, bytes, int]], currency: str, month: str
    ) -> list[dict[str, Any]]:
        groups: dict[str, dict[bytes, int]] = defaultdict(lambda: defaultdict(int))
        for _, phone, _, line, n in breakdown:
            groups[phone][line] += n
        rows = []
        for phone, counters in sorted(groups.items()):
            u = summarize(ALL, month, currency, {k: str(v).encode() for k, v in counters.items()})
            billable = sum(x["count"] for x in u["lines"] if x["billable"])
            rows.append(
                {
                    "phone_number_id": phone,
                    "units": u["units"],
                    "billable": billable,
                    "cost": u["total_cost"],
                    "billed_cost": u["total_billed_cost"],
                }
            )
        return rows

    # -- pending, buckets ----------------------------------------------------------------------

    def _pending(self, wabas: list[str], month: str) -> int:
        """Pending messages of the month (per WABA: ``pending(None)`` would SCAN every key)."""
        items = [item for w in wabas for item in self.queries.pending(w)]
        return sum(1 for item in items if _month_of(item["charge_time"]) == month)

    def _tiers(
        self, wabas: list[str], lines: list[dict[str, Any]], month: str
    ) -> list[dict[str, Any]]:
        """Volume tier progress per portfolio, market and tiered category seen this month."""
        seen = sorted(
            {
                (self.ratebook.waba(w).portfolio_id, x["market"], x["category"])
                for w in wabas
                for x in lines
                if x["category"] in TIERED_CATEGORIES
            }
        )
        out = []
        for portfolio, market, category in seen:
            key = self.keys.bucket(
                VOLUME_TIER, portfolio, market, category, month, portfolio=portfolio
            )
            table = self.redis.get(self.keys.bounds(key))
            if not table:
                continue
            tiers = json.loads(table)
            count = int(self.redis.zcard(key))
            out.append(_tier_progress(portfolio, market, category, tiers, count))
        return out

    def _waba_of(self, phone: str, wabas: list[str]) -> str:
        """The WABA of a business number (the ledger keeps it; the tag of its buckets)."""
        found = self.redis.hget(self.keys.phones, phone)
        return codec.text(found) if found else wabas[0]

    def _allowances(
        self,
        wabas: list[str],
        breakdown: list[tuple[str, str, bool, bytes, int]],
        month: str,
        tz: Any,
    ) -> list[dict[str, Any]]:
        """The free allowance of the month's pricing era, per business number (or WABA)."""
        start, _ = month_bounds(month, tz)
        policy = self.book.at(int(start.timestamp()), tz)
        if policy is None or policy.allowance is None:
            return []
        allowance = policy.allowance
        scopes = (
            sorted({phone for _, phone, *_ in breakdown})
            if allowance.scope == PHONE_ALLOWANCE
            else wabas
        )
        out = []
        for scope in scopes:
            waba = scope if allowance.scope != PHONE_ALLOWANCE else self._waba_of(scope, wabas)
            key = self.keys.bucket(allowance.scope, scope, month, waba_id=waba)
            used = int(self.redis.zcard(key))
            out.append(
                {
                    "scope": allowance.scope,
                    "id": scope,
                    "limit": allowance.limit,
                    "used": min(used, allowance.limit),
                    "percent": _percent(min(used, allowance.limit), allowance.limit),
                }
            )
        return out


def _group(lines: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Usage lines added up by ``by`` (category or market)."""
    groups: dict[str, dict[str, Any]] = {}
    for x in lines:
        g = groups.setdefault(
            x[by],
            {by: x[by], "units": 0, "billable": 0, "cost": Decimal(0), "billed_cost": Decimal(0)},
        )
        g["units"] += x["count"]
        g["billable"] += x["count"] if x["billable"] else 0
        g["cost"] += Decimal(x["cost"])
        g["billed_cost"] += Decimal(x["billed_cost"])
    return [
        {**g, "cost": money(g["cost"]), "billed_cost": money(g["billed_cost"])}
        for _, g in sorted(groups.items())
    ]


def _free(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[str, int] = defaultdict(int)
    for x in lines:
        if not x["billable"]:
            counts[x["free_reason"] or "unknown"] += x["count"]
    return [{"free_reason": r, "units": n} for r, n in sorted(counts.items())]


def _tier_progress(
    portfolio: str, market: str, category: str, tiers: list[dict[str, Any]], count: int
) -> dict[str, Any]:
    low = 0
    for tier in tiers:
        high = tier.get("to")
        if high is None or count <= high:
            span = None if high is None else high - low
            return {
                "portfolio_id": portfolio,
                "market": market,
                "category": category,
                "units": count,
                "tier": tier.get("label"),
                "rate": tier.get("rate"),
                "next_at": high,
                "percent": _percent(count - low, span) if span else None,
            }
        low = high
    return {
        "portfolio_id": portfolio,
        "market": market,
        "category": category,
        "units": count,
        "tier": None,
        "rate": None,
        "next_at": None,
        "percent": None,
    }


def _percent(part: int, whole: int) -> str:
    return format(round(Decimal(part) * 100 / Decimal(whole), 1), "f") if whole else "0"


def _month_of(iso_time: str) -> str:
    return iso_time[:7]

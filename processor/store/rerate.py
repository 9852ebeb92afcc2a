"""Re-rating: recompute every record's money for a month from the current rate files.

What is charged does not change (units, free reasons, allowance places stay); what it costs
does: country -> market, list rates, markup, and volume tiers, whose places are renumbered in
(charge time, wamid) order per portfolio x market x category. Changed records get a higher
version (a correction on the feed); the month's usage counters are rebuilt from the records.
It all happens in one MULTI/EXEC under WATCH, retried if a worker writes meanwhile.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis

from processor.core.model import Unit
from processor.core.policies import (
    FREE_SERVICE,
    FREE_TIER,
    PHONE_ALLOWANCE,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
)
from processor.core.pricing import PLAIN, Place, allowance_places, price_at, tier_places
from processor.core.pricing import bounds as places_bounds
from processor.core.rating import RateBook, local_date
from processor.store.call_rerate import reprice_calls
from processor.store.cluster import Router
from processor.store.keys import Keys
from processor.store.ops import estimate, money
from processor.store.queries import USAGE_LINE_FIELDS, Queries, public

ATTEMPTS = 10


@dataclass
class RerateResult:
    month: str
    wabas: list[str] = field(default_factory=list)
    records: int = 0
    changed: int = 0
    totals_before: dict[str, str] = field(default_factory=dict)
    totals_after: dict[str, str] = field(default_factory=dict)


def usage_line(rec: dict[str, Any]) -> str:
    values = {**rec, "billable": "1" if rec["billable"] else "0"}
    return "|".join("" if values[f] is None else str(values[f]) for f in USAGE_LINE_FIELDS)


def _as_unit(rec: dict[str, Any]) -> Unit:
    charge = int(datetime.fromisoformat(rec["charge_time"].replace("Z", "+00:00")).timestamp())
    return Unit(
        record_id=rec["record_id"], kind=rec["kind"], policy=rec["policy"],
        pricing_model=rec["pricing_model"], category=rec["category"], charge_time=charge,
        expires_at=None, wamid=rec["wamid"], meta_conversation_id=None,
        free_reason=rec.get("rule_free_reason"), bucket=rec.get("bucket_kind"),
        source=rec["source"], discrepancy=None, unrated=bool(rec.get("unrated")),
    )  # fmt: skip


def reprice(
    records: list[dict[str, Any]], ratebook: RateBook, keys: Keys, book: PolicyBook | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """New money for ``records`` (all records of one month of every WABA of the portfolios),
    and the bounds of the tables of each volume-tier bucket's members (kept beside it).

    Each tiered unit is priced from its own table (its WABA's currency and its charge date)
    at its renumbered place, exactly as the apply script prices it."""
    out = []
    tiered: dict[str, list[dict[str, Any]]] = defaultdict(list)
    calls = [r for r in records if r.get("kind") == "call"]  # priced by call_rerate
    for old in records:
        rec = dict(old)
        if rec.get("kind") == "call":
            continue
        if rec.get("void"):
            out.append(rec)
            continue
        unit = _as_unit(rec)
        rating = ratebook.rate_unit(unit, rec["waba_id"], rec["user_id"])
        rec.update(
            country=rating.country, country_source=rating.country_source, market=rating.market,
            currency=rating.currency, list_rate=money(rating.rate),
            list_billed_rate=money(rating.billed_rate),
        )  # fmt: skip
        upper = estimate(unit, ratebook.waba(rec["waba_id"]))
        if upper or "estimate" in rec:  # records booked before the field stay as they are
            rec["estimate"] = upper
        if unit.bucket == VOLUME_TIER and rating.tiers and unit.free_reason is None:
            portfolio = ratebook.waba(rec["waba_id"]).portfolio_id
            key = keys.bucket(VOLUME_TIER, portfolio, rating.market, unit.category,
                              rec["billing_month"], waba_id=rec["waba_id"])  # fmt: skip
            rec["bucket"] = key
            rec["places"] = [p.doc() for p in tier_places(rating.tiers)]
            tiered[key].append(rec)
        else:
            if keys.shared_bucket(rec.get("bucket", "")):
                rec["bucket"], rec["places"] = "", [p.doc() for p in PLAIN]
            # an allowance place stays as booked: only the list rate changes (and an exemption)
            _exemption(rec, ratebook)
            _price(rec, (Place(None, free=rec["free_reason"]),), 1)
            _legacy_allowance_places(rec, book or PolicyBook())
        out.append(rec)
    bounds: dict[str, Any] = {}  # a call bucket's companion holds its total pulses
    if calls:
        priced, bounds = reprice_calls(calls, ratebook, keys)
        out += priced
    for bucket, members in tiered.items():
        members.sort(key=lambda m: (m["score"], m["member"]))
        tables = set()
        for position, rec in enumerate(members, 1):
            places = tuple(Place.from_doc(d) for d in rec["places"])
            _price(rec, places, position)
            tables.update(places_bounds(places))
        bounds[bucket] = sorted(tables)
    return out, bounds


def _exemption(rec: dict[str, Any], ratebook: RateBook) -> None:
    """A service unit past its number's allowance follows the WABA's ``service_exempt_until``
    as configured now (rule book 9.2.6): ``free_service`` while it holds, charged after; its
    table follows, so that a later shift prices it the same way."""
    if rec.get("bucket_kind") != PHONE_ALLOWANCE or rec.get("unrated"):
        return
    if rec["free_reason"] not in (None, FREE_SERVICE):  # inside the allowance: free_tier
        return
    waba = ratebook.waba(rec["waba_id"])
    exempt = waba.service_exempt_on(local_date(_seconds(rec["charge_time"]), waba.timezone))
    rec["free_reason"] = FREE_SERVICE if exempt else None
    if rec.get("places"):
        rec["places"] = [*rec["places"][:-1], {**rec["places"][-1], "free": rec["free_reason"]}]


def _legacy_allowance_places(rec: dict[str, Any], book: PolicyBook) -> None:
    """A record booked before records kept their table gets its allowance's, so that a later
    shift moves it across the allowance's edge."""
    if "places" in rec or rec.get("bucket_kind") not in (WABA_ALLOWANCE, PHONE_ALLOWANCE):
        return
    allowance = book.by_id(rec["policy"]).allowance
    if allowance is not None:
        rec["places"] = [p.doc() for p in allowance_places(allowance.limit, FREE_TIER)]


def _price(rec: dict[str, Any], places: tuple[Place, ...], position: int) -> None:
    rate, billed = rec["list_rate"], rec["list_billed_rate"]
    priced = price_at(
        places,
        position,
        None if rate is None else Decimal(rate),
        None if billed is None else Decimal(billed),
        rec.get("rule_free_reason"),
    )
    rec.update(priced.fields())


class Rerater:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        ratebook: RateBook,
        feed_maxlen: int,
        book: PolicyBook | None = None,
    ):
        self.redis, self.keys, self.ratebook, self.feed_maxlen = client, keys, ratebook, feed_maxlen
        self.book = book or PolicyBook()
        self.feed = keys.feed

    def wabas_for(self, month: str, waba_id: str | None) -> list[str]:
        """The WABAs to re-rate together: those of the month sharing a portfolio with the one."""
        queries = Queries(self.redis, self.keys)
        wabas = sorted(w for w, m in queries.months(month=month))
        if waba_id is None:
            return wabas
        portfolio = self.ratebook.waba(waba_id).portfolio_id
        return [w for w in wabas if self.ratebook.waba(w).portfolio_id == portfolio]

    def rerate(self, month: str, waba_id: str | None = None) -> RerateResult:
        """Re-rate the month: in one transaction standalone; one per portfolio (hash tag) on
        a cluster, each on the node that serves the tag."""
        groups: dict[str, list[str]] = defaultdict(list)
        for waba in self.wabas_for(month, waba_id):
            groups[self.keys.tag(waba)].append(waba)
        result = RerateResult(month)
        for tag, wabas in sorted(groups.items()):
            part = self._rerate(month, tag, wabas)
            result.wabas += part.wabas
            result.records += part.records
            result.changed += part.changed
            result.totals_before.update(part.totals_before)
            result.totals_after.update(part.totals_after)
        return result

    def _rerate(self, month: str, tag: str, wabas: list[str]) -> RerateResult:
        node = Router(self.redis).groups([self.keys.months_of(tag)])[0][0]
        for _ in range(ATTEMPTS):
            try:
                return self._attempt(node, month, tag, wabas)
            except redis.WatchError:
                continue
        raise RuntimeError(f"re-rating {month} kept conflicting with live writes; try again")

    def _attempt(self, node: redis.Redis, month: str, tag: str, wabas: list[str]) -> RerateResult:
        result = RerateResult(month, wabas)
        if not wabas:
            return result
        self.feed = self.keys.feed_of(tag)
        with node.pipeline(transaction=True) as pipe:
            pipe.watch(*[self.keys.records(w, month) for w in wabas])  # type: ignore[no-untyped-call]
            pipe.watch(*[self.keys.usage(w, month) for w in wabas])  # type: ignore[no-untyped-call]
            old = [json.loads(v) for w in wabas
                   for v in pipe.hvals(self.keys.records(w, month))]  # fmt: skip
            new, bounds = reprice(old, self.ratebook, self.keys, self.book)
            buckets = {
                r["bucket"] for r in old + new if self.keys.shared_bucket(r.get("bucket", ""))
            }
            if buckets:
                pipe.watch(*buckets)  # type: ignore[no-untyped-call]
            result.totals_before = _totals(old)
            pipe.multi()
            self._write(pipe, month, wabas, old, new, result)
            self._rebuild_buckets(node, pipe, new, buckets, bounds)
            pipe.execute()
        result.totals_after = _totals(new)
        return result

    def _write(
        self,
        pipe: Any,
        month: str,
        wabas: list[str],
        old: list[dict[str, Any]],
        new: list[dict[str, Any]],
        result: RerateResult,
    ) -> None:
        before = {r["record_id"]: r for r in old}
        usage: dict[str, Counter[str]] = {w: Counter() for w in wabas}
        daily: dict[str, Counter[str]] = {w: Counter() for w in wabas}
        for rec in new:
            result.records += 1
            if not rec.get("void"):
                usage[rec["waba_id"]][usage_line(rec)] += 1
                if rec.get("kind") == "call":  # its minutes, in pulses (as apply.lua counts)
                    usage[rec["waba_id"]]["m|" + usage_line(rec)] += rec["pulses"]
                    minutes = _minutes_field(self._breakdown_field(rec))
                    daily[rec["waba_id"]][minutes] += rec["pulses"]
                daily[rec["waba_id"]][self._breakdown_field(rec)] += 1
            was = before[rec["record_id"]]
            if rec == was:
                continue
            corrected = public(rec) != public(was)  # else only its internal places changed
            if corrected:
                rec["version"] = was["version"] + 1
            body = json.dumps(rec)
            pipe.hset(self.keys.records(rec["waba_id"], month), rec["record_id"], body)
            if corrected:
                pipe.xadd(self.feed, {"r": body}, maxlen=self.feed_maxlen, approximate=True)
                result.changed += 1
        for counters, key_of in ((usage, self.keys.usage), (daily, self.keys.usage_daily)):
            for waba, lines in counters.items():
                key = key_of(waba, month)
                pipe.delete(key)
                if lines:
                    pipe.hset(key, mapping=dict(lines))

    def _breakdown_field(self, rec: dict[str, Any]) -> str:
        """The dashboard's breakdown counter of a record (as apply.lua counts it); the day is
        worked out for records booked before records carried it."""
        day = (
            rec.get("day")
            or local_date(
                _seconds(rec["charge_time"]), self.ratebook.waba(rec["waba_id"]).timezone
            ).isoformat()
        )
        flag = "1" if rec.get("discrepancy") else "0"
        return f"{day}|{rec['phone_number_id']}|{flag}|{usage_line(rec)}"

    def _rebuild_buckets(
        self,
        node: redis.Redis,
        pipe: Any,
        new: list[dict[str, Any]],
        old: set[str],
        bounds: dict[str, Any],
    ) -> None:
        """Tier buckets renumbered (members move with a changed market), and their bounds."""
        members: dict[str, dict[str, float]] = defaultdict(dict)
        for rec in new:
            bucket = rec.get("bucket", "")
            if self.keys.shared_bucket(bucket) and not rec.get("void"):
                members[bucket][rec["member"]] = rec["score"]
        for bucket in old - members.keys():
            pipe.delete(bucket)
        for bucket, scores in members.items():
            ttl = node.ttl(bucket)
            ttl = ttl if ttl and ttl > 0 else 45 * 86_400
            pipe.delete(bucket)
            pipe.zadd(bucket, scores)
            pipe.expire(bucket, ttl)
            pipe.set(self.keys.bounds(bucket), json.dumps(bounds[bucket]), ex=ttl)


def _minutes_field(breakdown: str) -> str:
    """A call's breakdown counter of minutes: ``day|phone|0|m|line`` (as apply.lua counts)."""
    day, phone, _, line = breakdown.split("|", 3)
    return f"{day}|{phone}|0|m|{line}"


def _seconds(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())


def _totals(records: list[dict[str, Any]]) -> dict[str, str]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for rec in records:
        if rec.get("billable") and not rec.get("void") and rec.get("cost") is not None:
            sums[rec["waba_id"]] += Decimal(rec["cost"])
    return {waba: money(total) or "0" for waba, total in sorted(sums.items())}

"""Re-rating call records (``wa-billing rerate``): their money from the current calling files.

The Python twin of calls.lua: each charged call's bucket (portfolio × callee market × month) is
renumbered in (charge time, call id) order, and every call is priced whole at the tier that
holds the bucket's running total of pulses after it. Free (user-initiated) calls stay free.
Returns the records and each bucket's total pulses (kept beside the bucket, as apply.lua does).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from processor.core.call_units import CALLING
from processor.core.policies import VOLUME_TIER
from processor.core.rating import RateBook, local_date
from processor.store.call_ops import minutes_text, places
from processor.store.keys import Keys


def reprice_calls(
    records: list[dict[str, Any]], ratebook: RateBook, keys: Keys
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    out, buckets = [], defaultdict(list)
    for old in records:
        rec = dict(old)
        out.append(rec)
        if rec.get("void"):
            continue
        waba = ratebook.waba(rec["waba_id"])
        day = local_date(_seconds(rec["charge_time"]), waba.timezone)
        country, source = ratebook.country_of(rec["user_id"])
        market, currency = ratebook.market(country, day), waba.currency_on(day)
        rec.update(country=country, country_source=source, market=market, currency=currency)
        if rec.get("bucket_kind") != VOLUME_TIER:
            price_call(rec, None)
            continue
        scope = (VOLUME_TIER, waba.portfolio_id, market, CALLING, rec["billing_month"])
        rec["bucket"] = keys.bucket(*scope, waba_id=rec["waba_id"])
        rec["places"] = places(ratebook, rec["waba_id"], rec["pulses"], market, currency, day)
        buckets[rec["bucket"]].append(rec)
    totals = {}
    for bucket, members in buckets.items():
        total = 0
        for rec in sorted(members, key=lambda m: (m["score"], m["member"])):
            total += rec["pulses"]
            price_call(rec, total)
        totals[bucket] = total
    return out, totals


def price_call(rec: dict[str, Any], after: int | None) -> None:
    """As calls.lua's ``price_call``: the first place whose ``to`` holds ``after`` prices the
    whole call; free calls cost 0; past the last place, or without places, unrated."""
    rec.update(rate=None, billed_rate=None, tier=None, cost=None, billed_cost=None)
    rec["tier_minutes_after"] = None if after is None else minutes_text(after)
    free = rec.get("rule_free_reason")
    if free:
        rec.update(billable=False, free_reason=free, cost="0", billed_cost="0")
        return
    rec.update(billable=True, free_reason=None)
    for place in rec.get("places") or ():
        if place["to"] is None or (after is not None and after <= place["to"]):
            rec.update(rate=place["rate"], billed_rate=place["billed"], tier=place["label"])
            rec.update(cost=place["cost"], billed_cost=place["billed_cost"])
            return


def _seconds(iso_time: str) -> int:
    return int(datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())

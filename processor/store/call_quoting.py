"""Quotes for calls: what a call of a given length ending at ``at`` would cost (rule book §8.1),
from the minutes its bucket holds now; changes nothing.

The answer has the message quote's shape (``allowed`` ... ``affects_record_ids``, ``billable``,
``cost``, the unit's fields) plus the call's: ``duration_s``, ``direction``, ``pulses``,
``billed_minutes``, ``tier_minutes_after``. A business-initiated call is priced whole at the
tier that holds the bucket's minutes (calls charged at or before ``at``) plus its own; a
user-initiated call is free. Calls later than ``at`` already in the bucket would move back
(their record ids are in ``affects_record_ids``).
"""

from __future__ import annotations

from typing import Any

import redis

from processor.core.call_units import CALL, CALLING
from processor.core.calls import (
    FREE_USER_INITIATED,
    USER_INITIATED,
    billed_minutes,
    pulses,
    tier_after,
)
from processor.core.policies import VOLUME_TIER, PolicyBook, local_month
from processor.core.rating import RateBook, local_date
from processor.store import codec
from processor.store.call_ops import minutes_text
from processor.store.keys import Keys
from processor.store.ops import iso, money

PER_CALL = "per_call_charge"  # a business-initiated call is charged by its minutes
FREE_CALL = "user_initiated_free"


def quote_call(
    client: redis.Redis,
    keys: Keys,
    ratebook: RateBook,
    book: PolicyBook,
    where: tuple[str, str, str],  # (waba_id, phone_number_id, user_id: the callee of a BIC)
    duration_s: int,
    direction: str,
    at: int,
) -> dict[str, Any]:
    waba_id, _, user = where
    waba = ratebook.waba(waba_id)
    day, month = local_date(at, waba.timezone), local_month(at, waba.timezone)
    country, source = ratebook.country_of(user)
    market = ratebook.market(country, day)
    currency = waba.currency_on(day)
    policy = book.at(at, waba.timezone)
    count = pulses(duration_s)
    free = direction == USER_INITIATED
    out: dict[str, Any] = {
        "allowed": True,
        "opens_charge": count > 0,
        "reason": FREE_CALL if free else PER_CALL,
        "joins_record_id": None,
        "at": iso(at),
        "affects_record_ids": [],
        "kind": CALL,
        "category": CALLING,
        "policy": policy.id if policy else "",
        "pricing_model": policy.pricing_model if policy else "PMP",
        "billing_month": month,
        "country": country,
        "country_source": source,
        "market": market,
        "currency": currency,
        "direction": direction,
        "duration_s": duration_s,
        "pulses": count,
        "billed_minutes": minutes_text(count),
        "tier_minutes_after": None,
    }
    if free or count == 0:
        reason = FREE_USER_INITIATED if free and count else None
        return {**out, "billable": False, "free_reason": reason, "rate": None,
                "billed_rate": None, "tier": None, "cost": "0", "billed_cost": "0"}  # fmt: skip
    scope = (VOLUME_TIER, waba.portfolio_id, market, CALLING, month)
    bucket = keys.bucket(*scope, waba_id=waba_id)
    before, later = _minutes_before(client, keys, bucket, at)
    after = before + count
    tier = tier_after(ratebook.calling.tiers(market, currency, day), billed_minutes(after))
    rate = None if tier is None else tier.rate_per_minute
    billed = None if rate is None else ratebook.billed(rate, waba_id)
    return {
        **out,
        "affects_record_ids": later,
        "billable": True,
        "free_reason": None,
        "tier_minutes_after": minutes_text(after),
        "tier": None if tier is None else tier.label,
        "rate": money(rate),
        "billed_rate": money(billed),
        "cost": None if rate is None else money(count * rate / 10),
        "billed_cost": None if billed is None else money(count * billed / 10),
    }


def _minutes_before(client: redis.Redis, keys: Keys, bucket: str, at: int) -> tuple[int, list[str]]:
    """The bucket's pulses charged at or before ``at``, and the record ids of calls after it."""
    total = int(client.get(keys.bounds(bucket)) or 0)
    later = [codec.text(m) for m in client.zrangebyscore(bucket, f"({at}", "+inf")]
    for member in later:
        total -= int(member.split("|")[1])
    return total, [m.rsplit("|", 1)[1] for m in later]

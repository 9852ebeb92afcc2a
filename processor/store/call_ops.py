"""Call units -> apply-script operations (rule book §8.4): the record and its minute bucket.

A charged call (BIC) is booked in the weighted bucket of its portfolio × callee market × month
(``volume_tier`` / ``calling``): its weight is its pulses (tenths of a minute), and the apply
script prices it by the bucket's running total after it (whole-call tiers, calls.lua). Its own
table of places is in pulses, each with this call's exact cost at that tier, so the script
never does decimal arithmetic. No I/O here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from processor.core.call_units import CallUnit
from processor.core.calls import PULSES_PER_MINUTE, call_cost
from processor.core.events import Pair
from processor.core.policies import VOLUME_TIER, local_month
from processor.core.rating import RateBook, local_date
from processor.store.keys import Keys
from processor.store.ops import _dump, iso, money


def put_call(
    keys: Keys, ratebook: RateBook, pair: Pair, unit: CallUnit, old: str
) -> tuple[str, str, str]:
    """The op for a new or changed call unit, its billing month and its bucket ("" if none)."""
    waba = ratebook.waba(pair.waba_id)
    day = local_date(unit.charge_time, waba.timezone)
    country, source = ratebook.country_of(pair.user_id)
    market = ratebook.market(country, day)
    currency = waba.currency_on(day)
    month = local_month(unit.charge_time, waba.timezone)
    bucket = ""
    if unit.bucket == VOLUME_TIER:
        scope = (VOLUME_TIER, waba.portfolio_id, market, unit.category, month)
        bucket = keys.bucket(*scope, waba_id=pair.waba_id)
    rec: dict[str, Any] = {
        "record_id": unit.record_id,
        "waba_id": pair.waba_id,
        "phone_number_id": pair.phone_number_id,
        "user_id": pair.user_id,
        "country": country,
        "country_source": source,
        "market": market,
        "category": unit.category,
        "kind": unit.kind,
        "pricing_model": unit.pricing_model,
        "policy": unit.policy,
        "direction": unit.direction,
        "call_id": unit.call_id,
        "call_status": unit.call_status,
        "start_time": iso(unit.start_time),
        "end_time": iso(unit.end_time),
        "duration_s": unit.duration_s,
        "pulses": unit.pulses,
        "billed_minutes": minutes_text(unit.pulses),
        "charge_time": iso(unit.charge_time),
        "expires_at": None,
        "billing_month": month,
        "currency": currency,
        "source": unit.source,
        "meta_conversation_id": None,
        "wamid": None,
        "discrepancy": unit.discrepancy,
        "estimate": None,  # a call's price is the list (tier) rate, never a bound
        "pricing_subtype": None,  # calls carry no pricing object
        "rule_free_reason": unit.free_reason,
        "bucket_kind": unit.bucket,
        "list_rate": None,
        "list_billed_rate": None,
        "bucket": bucket,
        "places": places(ratebook, pair.waba_id, unit.pulses, market, currency, day)
        if bucket
        else [],
        "member": f"{unit.call_id}|{unit.pulses}|{pair.waba_id}|{month}|{unit.record_id}",
        "score": unit.charge_time,
        "day": datetime.fromtimestamp(unit.charge_time, waba.timezone).strftime("%Y-%m-%d"),
        "weight": unit.pulses,
    }
    return _dump({"action": "put", "rid": unit.record_id, "old": old, "rec": rec}), month, bucket


def places(
    ratebook: RateBook, waba_id: str, pulse_count: int, market: str, currency: str, day: date
) -> list[dict[str, Any]]:
    """The call's own tier table in pulses: ``to`` (inclusive, None: no end), the tier's rate
    and label, and this call's cost there (``pulses × rate / 10``, exact), with the markup's."""
    out = []
    for tier in ratebook.calling.tiers(market, currency, day):
        rate = tier.rate_per_minute
        billed = ratebook.billed(rate, waba_id) if rate else rate
        upper = tier.to_minutes
        out.append(
            {
                "to": None if upper is None else int(upper * PULSES_PER_MINUTE),
                "rate": money(rate),
                "billed": money(billed),
                "label": tier.label,
                "cost": money(call_cost(pulse_count, rate)),
                "billed_cost": money(call_cost(pulse_count, billed)),
            }
        )
    return out


def minutes_text(pulse_total: int) -> str:
    """Pulses as minutes with one decimal (``"1.0"``), as calls.lua writes
    ``tier_minutes_after``."""
    return f"{pulse_total // PULSES_PER_MINUTE}.{pulse_total % PULSES_PER_MINUTE}"

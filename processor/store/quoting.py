"""Quotes: what delivering a message would cost now, from the stored state, changing nothing."""

from __future__ import annotations

from typing import Any

import redis

from processor.core.events import Pair
from processor.core.history import PairHistory
from processor.core.policies import FREE_TIER, VOLUME_TIER, PolicyBook, local_month
from processor.core.quote import quote
from processor.core.rating import RateBook
from processor.store import codec
from processor.store.keys import Keys
from processor.store.ops import iso, money


class Quoter:
    def __init__(self, client: redis.Redis, keys: Keys, ratebook: RateBook, book: PolicyBook):
        self.redis, self.keys, self.ratebook, self.book = client, keys, ratebook, book

    def waba_of(self, phone_number_id: str) -> str | None:
        waba = self.redis.hget(self.keys.phones, phone_number_id)
        return codec.text(waba) if waba else None

    def quote(
        self, waba_id: str, phone: str, user: str, category: str, template: bool, at: int
    ) -> dict[str, Any]:
        pair = Pair(waba_id, phone, user)
        version, blob = self.redis.hmget(self.keys.pair(pair), "v", "h")
        history = PairHistory.loads(blob, codec.text(version) if version else "")
        waba = self.ratebook.waba(waba_id)
        q = quote(pair, history, waba.timezone, self.book, category, template, at)
        out: dict[str, Any] = {
            "allowed": q.allowed,
            "opens_charge": q.opens,
            "reason": q.reason,
            "joins_record_id": q.joins,
            "at": iso(at),
            "affects_record_ids": list(q.affects),
        }
        unit = q.unit
        if unit is None:
            return {**out, "billable": False, "cost": "0" if q.allowed else None}
        rating = self.ratebook.rate_unit(unit, waba_id, user)
        month = local_month(at, waba.timezone)
        free, rate, billed, tier = unit.free_reason, rating.rate, rating.billed_rate, None
        if q.allowance_limit is not None and free is None and q.bucket_scope is not None:
            kind, scope, _ = q.bucket_scope
            used = self._before(self.keys.bucket(kind, scope, month), at)
            out["allowance"] = {"limit": q.allowance_limit, "used": used,
                                "left": max(0, q.allowance_limit - used)}  # fmt: skip
            free = FREE_TIER if used < q.allowance_limit else None
        elif unit.bucket == VOLUME_TIER and rating.tiers and free is None:
            key = self.keys.bucket(VOLUME_TIER, waba.portfolio_id, rating.market, unit.category,
                                   month)  # fmt: skip
            position = self._before(key, at) + 1
            chosen = next((t for t in rating.tiers if t.holds(position)), rating.tiers[-1])
            rate, billed, tier = chosen.rate, chosen.billed_rate, chosen.label
            out["volume"] = {"position": position, "tier": tier}
        billable = free is None
        return {
            **out,
            "kind": unit.kind,
            "category": unit.category,
            "policy": unit.policy,
            "pricing_model": unit.pricing_model,
            "billing_month": month,
            "country": rating.country,
            "market": rating.market,
            "currency": rating.currency,
            "billable": billable,
            "free_reason": free,
            "rate": money(rate),
            "billed_rate": money(billed),
            "tier": tier,
            "cost": money(rate) if billable else "0",
            "billed_cost": money(billed) if billable else "0",
        }

    def _before(self, bucket: str, at: int) -> int:
        """Units of ``bucket`` charged at or before ``at`` (they come first)."""
        return int(self.redis.zcount(bucket, "-inf", at))

"""Quotes: what delivering a message would cost now, from the stored state, changing nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis

from processor.core.events import Pair
from processor.core.groups import group_pair, known_participants
from processor.core.history import PairHistory
from processor.core.policies import (
    FREE_SERVICE,
    FREE_TIER,
    PHONE_ALLOWANCE,
    VOLUME_TIER,
    PolicyBook,
    local_month,
)
from processor.core.pricing import PLAIN, ZERO, allowance_places, price_at, tier_places
from processor.core.quote import Quote, quote
from processor.core.rating import RateBook, local_date
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
        history = self._history(pair)
        waba = self.ratebook.waba(waba_id)
        q = quote(pair, history, waba.timezone, self.book, category, template, at)
        return self._answer(q, waba_id, user, at)

    def _history(self, pair: Pair) -> PairHistory:
        version, blob = self.redis.hmget(self.keys.pair(pair), "v", "h")
        return PairHistory.loads(blob, codec.text(version) if version else "")

    def _answer(self, q: Quote, waba_id: str, user: str, at: int, ahead: int = 0) -> dict[str, Any]:
        """The priced answer of ``q`` for a delivery to ``user``; ``ahead``: deliveries of the
        same send that take places of its allowance before this one (group participants)."""
        waba = self.ratebook.waba(waba_id)
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
        places, position = PLAIN, 1
        if q.allowance_limit is not None and unit.free_reason is None and q.bucket_scope:
            kind, scope, _ = q.bucket_scope
            used = self._before(self.keys.bucket(kind, scope, month, waba_id=waba_id), at) + ahead
            out["allowance"] = {"limit": q.allowance_limit, "used": used,
                                "left": max(0, q.allowance_limit - used)}  # fmt: skip
            exempt = kind == PHONE_ALLOWANCE and waba.service_exempt_on(
                local_date(at, waba.timezone)
            )
            beyond = FREE_SERVICE if exempt else None  # rule book 9.2.6
            places, position = allowance_places(q.allowance_limit, FREE_TIER, beyond), used + 1
        elif unit.bucket == VOLUME_TIER and rating.tiers and unit.free_reason is None:
            key = self.keys.bucket(VOLUME_TIER, waba.portfolio_id, rating.market, unit.category,
                                   month, waba_id=waba_id)  # fmt: skip
            places, position = tier_places(rating.tiers), self._before(key, at) + 1
        priced = price_at(places, position, rating.rate, rating.billed_rate, unit.free_reason)
        if unit.bucket == VOLUME_TIER and places != PLAIN:
            out["volume"] = {"position": position, "tier": priced.tier}
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
            **priced.fields(),
        }

    def _before(self, bucket: str, at: int) -> int:
        """Units of ``bucket`` charged at or before ``at`` (they come first)."""
        return int(self.redis.zcount(bucket, "-inf", at))

    def participants(self, waba_id: str, phone: str, group_id: str) -> list[str]:
        """The participants the group's deliveries so far named (its history's)."""
        return known_participants(self._history(group_pair(waba_id, phone, group_id)))

    def quote_group(
        self,
        waba_id: str,
        phone: str,
        group_id: str | None,
        participants: list[str],
        category: str,
        template: bool,
        at: int,
    ) -> dict[str, Any]:
        """One message to a group: a quote per participant it would reach (each at its own
        market, one after the other in the number's allowance), and their sum."""
        pair = group_pair(waba_id, phone, group_id or "")
        history = self._history(pair) if group_id else PairHistory()  # no group: no window
        tz = self.ratebook.waba(waba_id).timezone
        answers: list[dict[str, Any]] = []
        for who in participants:
            q = quote(pair, history, tz, self.book, category, template, at, participant=who)
            ahead = sum(1 for a in answers if "allowance" in a)
            answers.append({"user_id": who, **self._answer(q, waba_id, who, at, ahead)})
        return group_sum(group_id, answers, at)


def group_sum(group_id: str | None, answers: list[dict[str, Any]], at: int) -> dict[str, Any]:
    """The group quote: the participants' answers and their sums (a sum is null when one of
    its terms is: an unrated participant)."""
    first = answers[0]
    reasons = {a["reason"] for a in answers}
    out: dict[str, Any] = {
        "allowed": all(a["allowed"] for a in answers),
        "opens_charge": any(a["opens_charge"] for a in answers),
        "reason": first["reason"] if len(reasons) == 1 else "per_participant",
        "joins_record_id": None,
        "at": iso(at),
        "affects_record_ids": sorted({r for a in answers for r in a["affects_record_ids"]}),
        "billable": any(a["billable"] for a in answers),
        "group_id": group_id,
        "participants": answers,
    }
    for name in ("cost", "billed_cost"):
        terms = [a.get(name, a["cost"]) for a in answers]
        out[name] = None if None in terms else money(sum((Decimal(t) for t in terms), ZERO))
    for name in ("kind", "category", "policy", "pricing_model", "billing_month", "currency"):
        if name in first:
            out[name] = first[name]
    return out

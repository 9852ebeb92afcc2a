"""Units -> the operations the apply script performs (record fields, bucket, tiers).

No I/O here: the ledger sends these operations to Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from processor.core import fastjson
from processor.core.call_units import CallUnit
from processor.core.events import Pair
from processor.core.model import Pending, Unit
from processor.core.policies import (
    FREE_SERVICE,
    FREE_TIER,
    MARKETING_LITE,
    PHONE_ALLOWANCE,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
    local_month,
)
from processor.core.pricing import PLAIN, Place, allowance_places, tier_places
from processor.core.rating import RateBook, Rating, WabaSettings, local_date
from processor.store.keys import Keys

# Record fields that say where a unit is booked; kept in Redis, not shown to users.
INTERNAL_FIELDS = (
    "rule_free_reason",
    "bucket_kind",
    "list_rate",
    "list_billed_rate",
    "bucket",
    "member",
    "score",
    "places",
    "day",
    "meta_in_tier",
    "rule_discrepancy",
    "unrated",
    "weight",
)
UPPER_BOUND = "upper_bound"  # record ``estimate``: Meta may charge less (max price, rule book 10)


def iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()[:19] + "Z"  # strftime: slower


def money(value: Decimal | None) -> str | None:
    """A decimal as a plain string (never exponent notation), exactly."""
    return None if value is None else format(value, "f")


def estimate(unit: Unit, waba: WabaSettings) -> str | None:
    """``upper_bound`` for a charged marketing_lite unit of a WABA that uses max price: the
    list rate is what Meta charges at most (no webhook carries the final price)."""
    charged = unit.free_reason is None and not unit.unrated
    return (
        UPPER_BOUND
        if charged and unit.category == MARKETING_LITE and waba.max_price_enabled
        else None
    )


def _dump(doc: dict[str, Any]) -> str:
    return fastjson.dumps(doc)  # json.dumps(doc, separators=(",", ":")), faster


PAST_HORIZON = "past the pair's history horizon; "


class OpBuilder:
    """Builds apply-script operations for the units and pending messages of one pair."""

    def __init__(self, keys: Keys, ratebook: RateBook, book: PolicyBook) -> None:
        self.keys, self.ratebook, self.book = keys, ratebook, book

    def put(self, pair: Pair, unit: Unit, old_month: str | None) -> tuple[str, str, str]:
        """The op for a new or changed unit, the billing month it lands in, and its bucket
        ("" when it has none)."""
        if isinstance(unit, CallUnit):  # a connected call (rule book 8.4)
            from processor.store.call_ops import put_call  # it builds on this module

            return put_call(self.keys, self.ratebook, pair, unit, self._old(pair, old_month))
        waba = self.ratebook.waba(pair.waba_id)
        user = unit.participant or pair.user_id  # a group delivery: rated at its participant
        rating = self.ratebook.rate_unit(unit, pair.waba_id, user)
        month = local_month(unit.charge_time, waba.timezone)
        bucket, places = self._bucket(pair, unit, rating, waba.portfolio_id, month)
        rec = self.record(pair, unit, rating, month)
        if unit.unrated:
            rec["unrated"] = True  # an unknown pricing.type: never priced, also by a rerate
        if unit.meta_in_tier is not None and bucket:  # Meta's free-tier answer (pricing.lua)
            rec["meta_in_tier"], rec["rule_discrepancy"] = unit.meta_in_tier, unit.discrepancy
        rec["bucket"] = bucket
        rec["places"] = [p.doc() for p in places]
        # ordered by (charge time, wamid[, participant]) in its bucket
        wamid = unit.wamid if unit.participant is None else f"{unit.wamid}|{unit.participant}"
        rec["member"] = f"{wamid}|{pair.waba_id}|{month}|{unit.record_id}"
        rec["score"] = unit.charge_time
        rec["day"] = datetime.fromtimestamp(unit.charge_time, waba.timezone).date().isoformat()
        op = {"action": "put", "rid": unit.record_id, "old": self._old(pair, old_month)}
        return _dump({**op, "rec": rec}), month, bucket

    def void(self, pair: Pair, record_id: str, old_month: str | None) -> str:
        return _dump({"action": "void", "rid": record_id, "old": self._old(pair, old_month)})

    def _old(self, pair: Pair, month: str | None) -> str:
        return self.keys.records(pair.waba_id, month) if month else ""

    def record(self, pair: Pair, unit: Unit, rating: Rating, month: str) -> dict[str, Any]:
        """The record's fields; billable, free_reason, rate, cost and tier are set in Redis."""
        group = {} if unit.group_id is None else {"group_id": unit.group_id}
        return {
            "record_id": unit.record_id,
            "waba_id": pair.waba_id,
            "phone_number_id": pair.phone_number_id,
            "user_id": unit.participant or pair.user_id,
            **group,
            "country": rating.country,
            "country_source": rating.country_source,
            "market": rating.market,
            "category": unit.category,
            "kind": unit.kind,
            "pricing_model": unit.pricing_model,
            "policy": unit.policy,
            "charge_time": iso(unit.charge_time),
            "expires_at": iso(unit.expires_at),
            "billing_month": month,
            "currency": rating.currency,
            "source": unit.source,
            "meta_conversation_id": unit.meta_conversation_id,
            "wamid": unit.wamid,
            "discrepancy": unit.discrepancy,
            "rule_free_reason": unit.free_reason,
            "bucket_kind": unit.bucket,
            "list_rate": money(rating.rate),
            "list_billed_rate": money(rating.billed_rate),
            "estimate": estimate(unit, self.ratebook.waba(pair.waba_id)),
            "pricing_subtype": unit.pricing_subtype,
        }

    def _bucket(
        self, pair: Pair, unit: Unit, rating: Rating, portfolio: str, month: str
    ) -> tuple[str, tuple[Place, ...]]:
        """The unit's bucket and its own table of places there (its currency, its date)."""
        if unit.bucket in (WABA_ALLOWANCE, PHONE_ALLOWANCE):
            allowance = self.book.by_id(unit.policy).allowance
            assert allowance is not None
            scope = pair.waba_id if unit.bucket == WABA_ALLOWANCE else pair.phone_number_id
            key = self.keys.bucket(unit.bucket, scope, month, waba_id=pair.waba_id)
            beyond = FREE_SERVICE if self._exempt(pair, unit) else None
            return key, allowance_places(allowance.limit, FREE_TIER, beyond)
        if unit.bucket == VOLUME_TIER and rating.tiers:
            key = self.keys.bucket(
                VOLUME_TIER, portfolio, rating.market, unit.category, month, waba_id=pair.waba_id
            )
            return key, tier_places(rating.tiers)
        return "", PLAIN

    def _exempt(self, pair: Pair, unit: Unit) -> bool:
        """Rule book 9.2.6: service units past the business number's allowance are free
        (``free_service``) while the WABA's ``service_exempt_until`` holds."""
        if unit.bucket != PHONE_ALLOWANCE:
            return False
        waba = self.ratebook.waba(pair.waba_id)
        return waba.service_exempt_on(local_date(unit.charge_time, waba.timezone))

    def pending_ops(
        self,
        pair: Pair,
        before: dict[str, list[Any]],
        after: tuple[Pending, ...],
        floor: int = 0,
    ) -> tuple[dict[str, list[Any]], list[str]]:
        """Ops that make the WABA's pending list match ``after``; and the new stored form.

        A message still pending when its pair's history was trimmed past it stays listed (it
        can no longer be priced from webhooks, and must not vanish silently)."""
        now: dict[str, list[Any]] = {w: [t, r] for w, (t, r) in before.items() if t < floor}
        now.update({p.wamid: [p.charge_time, p.reason] for p in after})
        for item in now.values():
            if item[0] < floor and not item[1].startswith(PAST_HORIZON):
                item[1] = PAST_HORIZON + item[1]
        key = self.keys.pending(pair.waba_id)
        ops = []
        for wamid in sorted(before.keys() | now.keys()):
            if before.get(wamid) == now.get(wamid):
                continue
            field = f"{pair.phone_number_id}|{pair.user_id}|{wamid}"
            value = None
            if wamid in now:
                value = _dump(
                    {
                        "waba_id": pair.waba_id,
                        "phone_number_id": pair.phone_number_id,
                        "user_id": pair.user_id,
                        "wamid": wamid,
                        "charge_time": iso(int(now[wamid][0])),
                        "reason": now[wamid][1],
                    }
                )
            ops.append(_dump({"key": key, "field": field, "value": value}))
        return now, ops

"""Units -> the operations the apply script performs (record fields, bucket, tiers, keys).

No I/O here: the ledger sends these operations to Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from processor.core.events import Pair
from processor.core.model import Pending, Unit
from processor.core.policies import (
    FREE_TIER,
    PHONE_ALLOWANCE,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
    local_month,
)
from processor.core.rating import RateBook, Rating
from processor.store.keys import Keys

DAY = 86_400


@dataclass(frozen=True)
class Retention:
    """How long the booking side keeps what it writes (seconds)."""

    unit: int
    horizon: int
    records: int


def iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class OpBuilder:
    """Builds apply-script operations for the units and pending messages of one pair."""

    def __init__(
        self,
        keys: Keys,
        ratebook: RateBook,
        book: PolicyBook,
        keep: Retention,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys, self.ratebook, self.book, self.keep = keys, ratebook, book, keep
        self.clock = clock  # only for key lifetimes; billing decisions never read it

    def put(self, pair: Pair, unit: Unit) -> str:
        waba = self.ratebook.waba(pair.waba_id)
        rating = self.ratebook.rate_unit(unit, pair.waba_id, pair.user_id)
        month = local_month(unit.charge_time, waba.timezone)
        bucket, tiers = self._bucket(pair, unit, rating, waba.portfolio_id, month)
        month_end = _month_end(unit.charge_time, waba.timezone)
        op = {
            "action": "put",
            "rec": self.record(pair, unit, rating, month),
            "keys": {
                "unit": self.keys.unit(unit.record_id),
                "records": self.keys.records(pair.waba_id, month),
                "usage": self.keys.usage(pair.waba_id, month),
                "bucket": bucket,
                "index": self.keys.months,
            },
            "member": f"{unit.wamid}|{unit.record_id}",
            "score": unit.charge_time,
            "tiers": tiers,
            "ttl": {
                "unit": self.keep.unit,
                "bucket": self._ttl(month_end + self.keep.horizon + DAY, self.keep.horizon),
                "keep": self._ttl(month_end + self.keep.records, self.keep.records),
            },
        }
        return json.dumps(op, separators=(",", ":"))

    def _ttl(self, until: int, at_least: int) -> int:
        """Seconds from now until ``until``; replayed old months still get ``at_least``."""
        return max(int(until - self.clock()), at_least)

    def void(self, record_id: str) -> str:
        op = {"action": "void", "keys": {"unit": self.keys.unit(record_id)}}
        return json.dumps(op, separators=(",", ":"))

    def record(self, pair: Pair, unit: Unit, rating: Rating, month: str) -> dict[str, Any]:
        """The record's fields; billable, free_reason, rate, cost and tier are set in Redis."""
        return {
            "record_id": unit.record_id,
            "waba_id": pair.waba_id,
            "phone_number_id": pair.phone_number_id,
            "user_id": pair.user_id,
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
        }

    def _bucket(
        self, pair: Pair, unit: Unit, rating: Rating, portfolio: str, month: str
    ) -> tuple[str, list[dict[str, Any]]]:
        rate, billed = _money(rating.rate), _money(rating.billed_rate)
        plain = [{"to": None, "rate": rate, "billed": billed, "free": None, "label": None}]
        if unit.bucket in (WABA_ALLOWANCE, PHONE_ALLOWANCE):
            allowance = self.book.by_id(unit.policy).allowance
            assert allowance is not None
            scope = pair.waba_id if unit.bucket == WABA_ALLOWANCE else pair.phone_number_id
            key = self.keys.bucket(unit.bucket, scope, month)
            free = {"to": allowance.limit, "rate": rate, "billed": billed, "free": FREE_TIER}
            return key, [{**free, "label": None}, *plain]
        if unit.bucket == VOLUME_TIER and rating.tiers:
            key = self.keys.bucket(VOLUME_TIER, portfolio, rating.market, unit.category, month)
            tiers = [
                {
                    "to": t.to_volume,
                    "rate": str(t.rate),
                    "billed": str(t.billed_rate),
                    "free": None,
                    "label": t.label,
                }
                for t in rating.tiers
            ]
            return key, tiers
        return "", plain

    def pending_ops(
        self, pair: Pair, before: dict[str, list[Any]], after: tuple[Pending, ...]
    ) -> tuple[dict[str, list[Any]], list[str]]:
        """Ops that make the WABA's pending list match ``after``; and the new stored form."""
        now = {p.wamid: [p.charge_time, p.reason] for p in after}
        key = self.keys.pending(pair.waba_id)
        ops = []
        for wamid in before.keys() | now.keys():
            if before.get(wamid) == now.get(wamid):
                continue
            field = f"{pair.phone_number_id}|{pair.user_id}|{wamid}"
            value = None
            if wamid in now:
                value = json.dumps(
                    {
                        "waba_id": pair.waba_id,
                        "phone_number_id": pair.phone_number_id,
                        "user_id": pair.user_id,
                        "wamid": wamid,
                        "charge_time": iso(now[wamid][0]),
                        "reason": now[wamid][1],
                    }
                )
            ops.append(json.dumps({"key": key, "field": field, "value": value}))
        return now, ops


def _month_end(timestamp: int, tz: Any) -> int:
    local = datetime.fromtimestamp(timestamp, tz)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return int(following.timestamp())

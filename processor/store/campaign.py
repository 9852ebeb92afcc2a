"""Campaign quotes: what sending one template to many recipients would cost, changing nothing.

Each send is decided in the recipients' order with the same what-if as a single quote
(:func:`processor.core.quote.quote` over the pair's stored history). Allowances and volume
tiers are numbered like the apply script numbers them: a unit entering a bucket takes the place
after the units already there at ``at`` *and after the batch's own earlier sends*, so a batch
that crosses a tier boundary or uses up an allowance is priced as delivering it would be.
Histories are read in pipelined chunks; each bucket is counted once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import redis

from processor.core.campaign import Send, Tally
from processor.core.events import Pair
from processor.core.history import PairHistory
from processor.core.policies import (
    FREE_TIER,
    PHONE_ALLOWANCE,
    VOLUME_TIER,
    WABA_ALLOWANCE,
    PolicyBook,
    local_month,
)
from processor.core.quote import Quote, quote
from processor.core.rating import RateBook, local_date
from processor.store import codec
from processor.store.keys import Keys
from processor.store.ops import iso

MAX_RECIPIENTS = 100_000
CHUNK = 1_000


@dataclass(frozen=True)
class Campaign:
    waba_id: str
    phone_number_id: str
    category: str
    template: bool
    at: int
    recipients: tuple[str, ...]


@dataclass
class _Bucket:
    kind: str
    scope: dict[str, str]
    before: int
    limit: int | None = None
    added: int = 0


class CampaignQuoter:
    def __init__(self, client: redis.Redis, keys: Keys, ratebook: RateBook, book: PolicyBook):
        self.redis, self.keys, self.ratebook, self.book = client, keys, ratebook, book
        self.buckets: dict[str, _Bucket] = {}
        self.tiers_seen: dict[str, Counter[str]] = {}
        self.at = 0
        self.fresh: Quote | None = None

    def quote(self, campaign: Campaign) -> dict[str, Any]:
        """The batch's cost per market, its bucket effects and its totals (ValueError: bad
        category for ``template``, or duplicate recipients)."""
        _check_unique(campaign.recipients)
        self.buckets, self.tiers_seen, self.at, self.fresh = {}, {}, campaign.at, None
        waba = self.ratebook.waba(campaign.waba_id)
        tally = Tally()
        for chunk in _chunks(campaign.recipients, CHUNK):
            for user, history in zip(chunk, self._histories(campaign, chunk), strict=True):
                tally.add(self._send(campaign, user, history))
        return {
            "waba_id": campaign.waba_id,
            "phone_number_id": campaign.phone_number_id,
            "category": campaign.category,
            "template": campaign.template,
            "at": iso(campaign.at),
            "billing_month": local_month(campaign.at, waba.timezone),
            "currency": waba.currency,
            **tally.totals(),
            "buckets": [self._bucket_json(key, b) for key, b in sorted(self.buckets.items())],
        }

    def _histories(self, campaign: Campaign, users: list[str]) -> list[PairHistory | None]:
        """Each pair's stored history; None for a pair with none (never in contact)."""
        pipe = self.redis.pipeline(transaction=False)
        for user in users:
            pipe.hmget(self.keys.pair(Pair(campaign.waba_id, campaign.phone_number_id, user)),
                       "v", "h")  # fmt: skip
        return [
            PairHistory.loads(blob, codec.text(version) if version else "") if blob else None
            for version, blob in pipe.execute()
        ]

    def _send(self, campaign: Campaign, user: str, history: PairHistory | None) -> Send:
        pair = Pair(campaign.waba_id, campaign.phone_number_id, user)
        tz = self.ratebook.waba(pair.waba_id).timezone
        q = self._quote(campaign, pair, history, tz)
        unit = q.unit
        if unit is None:
            country, _ = self.ratebook.country_of(user)
            market = self.ratebook.market(country, local_date(campaign.at, tz))
            return Send(market, q.allowed, q.reason, False, False, None, None, None, None)
        rating = self.ratebook.rate_unit(unit, pair.waba_id, user)
        free, rate, billed, tier = unit.free_reason, rating.rate, rating.billed_rate, None
        month = local_month(unit.charge_time, tz)
        if unit.bucket in (WABA_ALLOWANCE, PHONE_ALLOWANCE):
            place = self._enter(self._allowance(q, pair, unit.bucket, month))
            if q.allowance_limit is not None and free is None and place <= q.allowance_limit:
                free = FREE_TIER
        elif unit.bucket == VOLUME_TIER and rating.tiers:
            portfolio = self.ratebook.waba(pair.waba_id).portfolio_id
            key = self.keys.bucket(
                VOLUME_TIER, portfolio, rating.market, unit.category, month, waba_id=pair.waba_id
            )
            scope = {"portfolio_id": portfolio, "market": rating.market,
                     "category": unit.category, "month": month}  # fmt: skip
            place = self._enter(self._bucket(key, VOLUME_TIER, scope, None))
            chosen = next((t for t in rating.tiers if t.holds(place)), rating.tiers[-1])
            self.tiers_seen.setdefault(key, Counter())[chosen.label] += 1
            if free is None:
                rate, billed, tier = chosen.rate, chosen.billed_rate, chosen.label
        billable = free is None
        return Send(rating.market, q.allowed, q.reason, True, billable, free, tier, rate, billed)

    def _quote(
        self, campaign: Campaign, pair: Pair, history: PairHistory | None, tz: ZoneInfo
    ) -> Quote:
        """The single-message what-if; for pairs with no history it is the same for every
        user (the window model reads no user id), so it is decided once."""
        what = (self.book, campaign.category, campaign.template, campaign.at)
        if history is not None:
            return quote(pair, history, tz, *what)
        if self.fresh is None:
            self.fresh = quote(pair, PairHistory.loads(None, ""), tz, *what)
        return self.fresh

    def _allowance(self, q: Quote, pair: Pair, kind: str, month: str) -> str:
        scope_id = pair.waba_id if kind == WABA_ALLOWANCE else pair.phone_number_id
        key = self.keys.bucket(kind, scope_id, month, waba_id=pair.waba_id)
        name = "waba_id" if kind == WABA_ALLOWANCE else "phone_number_id"
        return self._bucket(key, kind, {name: scope_id, "month": month}, q.allowance_limit)

    def _bucket(self, key: str, kind: str, scope: dict[str, str], limit: int | None) -> str:
        if key not in self.buckets:
            self.buckets[key] = _Bucket(kind, scope, self._before(key, self.at), limit)
        return key

    def _enter(self, key: str) -> int:
        """The 1-based place a new unit takes in bucket ``key``."""
        bucket = self.buckets[key]
        bucket.added += 1
        return bucket.before + bucket.added

    def _before(self, key: str, at: int) -> int:
        """Units of the bucket charged at or before ``at`` (as a single quote counts them)."""
        return int(self.redis.zcount(key, "-inf", at))

    def _bucket_json(self, key: str, b: _Bucket) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bucket": b.kind,
            **b.scope,
            "before": b.before,
            "added": b.added,
            "after": b.before + b.added,
        }
        if b.limit is not None:
            out["limit"] = b.limit
            out["free_left_after"] = max(0, b.limit - b.before - b.added)
        if key in self.tiers_seen:
            out["tiers"] = dict(sorted(self.tiers_seen[key].items()))
        return out


def _check_unique(recipients: tuple[str, ...]) -> None:
    seen: set[str] = set()
    for user in recipients:
        if user in seen:
            raise ValueError(f"recipient {user!r} appears more than once")
        seen.add(user)


def _chunks(items: tuple[str, ...], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]

"""Rating: who the user is (country, market) and what one charge unit costs.

Pure: the tables come in as plain rows (``processor.config_files`` reads them from CSV), the
time comes from the unit. Every table row applies from its ``effective_from`` date, read in the
WABA's time zone, until the next row for the same key; before the first row there is no rate
(``None``) and the market is ``"Other"``. Money is :class:`~decimal.Decimal`, exactly as written.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from processor.core.call_rates import CallingBook
from processor.core.model import Unit
from processor.core.policies import GROUP_RATED_AS, MARKETING, MARKETING_LITE, REFERRAL

OTHER = "Other"
PHONE, BSUID, UNKNOWN = "phone", "bsuid", "unknown"
DEFAULT_CURRENCY = "USD"
UTC = ZoneInfo("UTC")

_PHONE = re.compile(r"\+?(\d{7,15})")
_BSUID = re.compile(r"([A-Za-z]{2})\.[A-Za-z0-9][A-Za-z0-9._-]*")
_NO_REGION = frozenset(
    {None, phonenumbers.UNKNOWN_REGION, phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY}
)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
RateKey = tuple[str, str, str]  # (market, currency, category)


# -- the rows the tables are made of ---------------------------------------------------------


@dataclass(frozen=True)
class WabaSettings:
    """What rating needs to know about one WABA (Messaging account)."""

    waba_id: str
    currency: str  # the billing currency of its first row
    timezone: ZoneInfo
    portfolio_id: str
    changes: tuple[tuple[date, str], ...] = ()  # (effective_from, currency) of later rows
    service_exempt_until: date | None = None  # rule book 9.2.6: exempt organisation, inclusive
    max_price_enabled: bool = False  # rule book 10: marketing_lite prices are upper bounds

    def service_exempt_on(self, day: date) -> bool:
        """Whether service units past the allowance are free (``free_service``) on ``day``."""
        return self.service_exempt_until is not None and day <= self.service_exempt_until

    @classmethod
    def default(cls, waba_id: str) -> WabaSettings:
        """An unconfigured WABA: USD, UTC, its own portfolio."""
        return cls(waba_id, DEFAULT_CURRENCY, UTC, waba_id)

    def currency_on(self, day: date) -> str:
        """The billing currency in force on ``day`` (the WABA's local date)."""
        found = self.currency
        for since, currency in sorted(self.changes):
            if since <= day:
                found = currency
        return found

    @property
    def currencies(self) -> tuple[str, ...]:
        """Every billing currency the WABA has had, first one first."""
        seen = [self.currency, *(c for _, c in sorted(self.changes))]
        return tuple(dict.fromkeys(seen))


@dataclass(frozen=True)
class Markup:
    """A WABA's markup: ``amount * (1 + percent / 100) + fixed_per_unit``."""

    waba_id: str
    percent: Decimal
    fixed_per_unit: Decimal


@dataclass(frozen=True)
class MarketRow:
    """From ``effective_from``, users in ``country`` (ISO alpha-2) are billed in ``market``."""

    effective_from: date
    country: str
    market: str


@dataclass(frozen=True)
class RateRow:
    """Meta's list price of one unit of ``category`` in ``market``, from ``effective_from``."""

    effective_from: date
    market: str
    currency: str
    category: str
    rate: Decimal

    @property
    def key(self) -> RateKey:
        return (self.market, self.currency, self.category)


@dataclass(frozen=True)
class TierRow:
    """One volume band ``(from_volume, to_volume]`` of charged units per month, marginal."""

    effective_from: date
    market: str
    currency: str
    category: str
    from_volume: int
    to_volume: int | None
    rate: Decimal

    @property
    def key(self) -> RateKey:
        return (self.market, self.currency, self.category)


# -- what rating answers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    """The k-th charged unit of the month (1-based) is in this tier if ``from < k <= to``."""

    from_volume: int
    to_volume: int | None
    rate: Decimal
    billed_rate: Decimal

    @property
    def label(self) -> str:
        """Meta's tier string, e.g. ``"25000001:50000000"`` (open end: ``"50000001:"``)."""
        return f"{self.from_volume + 1}:{self.to_volume or ''}"

    def holds(self, k: int) -> bool:
        """True if the ``k``-th charged unit of the month (1-based) falls in this tier."""
        return self.from_volume < k and (self.to_volume is None or k <= self.to_volume)


@dataclass(frozen=True)
class Rating:
    """The price of one unit: list ``rate`` and ``billed_rate`` (with markup), or tiers."""

    country: str | None
    country_source: str  # PHONE | BSUID | UNKNOWN
    market: str
    currency: str
    rate: Decimal | None  # None: the rate card has no rate for this unit
    billed_rate: Decimal | None
    tiers: tuple[Tier, ...]  # non-empty when volume tiers apply; then the tier's rate wins

    def tier_for(self, k: int) -> Tier | None:
        """The tier of the ``k``-th charged unit of the month, None without tiers."""
        return next((t for t in self.tiers if t.holds(k)), None)


class Timeline(Generic[T]):
    """Values that each hold from their date until the next one."""

    def __init__(self, entries: Iterable[tuple[date, T]]) -> None:
        ordered = sorted(entries, key=lambda e: e[0])  # stable: on equal dates, the last wins
        self.days = [day for day, _ in ordered]
        self.values = [value for _, value in ordered]

    def at(self, day: date) -> T | None:
        i = bisect_right(self.days, day)
        return self.values[i - 1] if i else None


# -- the rate book ---------------------------------------------------------------------------


class RateBook:
    """Markets, rates, tiers, WABA settings and markups, looked up by local date."""

    def __init__(
        self,
        markets: Iterable[MarketRow] = (),
        rates: Iterable[RateRow] = (),
        tiers: Iterable[TierRow] = (),
        wabas: Iterable[WabaSettings] = (),
        markups: Iterable[Markup] = (),
        calling: CallingBook | None = None,
    ) -> None:
        self._markets = _timelines((r.country, r.effective_from, r.market) for r in markets)
        self._rates = _timelines((r.key, r.effective_from, r.rate) for r in rates)
        self._tiers = _tier_timelines(tiers)
        self._wabas = {w.waba_id: w for w in wabas}
        self._markups = {m.waba_id: m for m in markups}
        self.calling = calling or CallingBook()  # calling_rates.csv, calling_tiers.csv

    # -- who and where -------------------------------------------------------------------

    def waba(self, waba_id: str) -> WabaSettings:
        return self._wabas.get(waba_id) or WabaSettings.default(waba_id)

    def wabas_in(self, waba_id: str) -> tuple[str, ...]:
        """Every WABA of ``waba_id``'s portfolio (itself included), sorted."""
        portfolio = self.waba(waba_id).portfolio_id
        found = {w for w, s in self._wabas.items() if s.portfolio_id == portfolio}
        return tuple(sorted(found | {waba_id}))

    def portfolios(self) -> dict[str, str]:
        """waba_id -> portfolio_id of every configured WABA."""
        return {w: s.portfolio_id for w, s in self._wabas.items()}

    def country_of(self, user_id: str) -> tuple[str | None, str]:
        """ISO alpha-2 country of a user id (phone digits or BSUID), and where it came from."""
        return country_of(user_id)

    def market(self, country: str | None, day: date) -> str:
        """The market of ``country`` on ``day``: its own row, else the row of its calling
        code's main country (Guernsey -> GB's market), else ``Other``."""
        for candidate in (country, main_country(country)):
            timeline = self._markets.get(candidate) if candidate else None
            found = timeline.at(day) if timeline else None
            if found:
                return found
        return OTHER

    # -- prices --------------------------------------------------------------------------

    def rate(self, market: str, category: str, currency: str, day: date) -> Decimal | None:
        """Meta's list price of one unit; ``None`` when the rate card has none."""
        category = GROUP_RATED_AS.get(category, category)  # the card has no group columns
        found = self._rate_at((market, currency, category), day)
        if found is None and category == MARKETING_LITE:
            return self._rate_at((market, currency, MARKETING), day)
        if found is None and category == REFERRAL:
            return Decimal("0")
        return found

    def tiers(
        self, market: str, category: str, currency: str, day: date, waba_id: str | None = None
    ) -> tuple[Tier, ...]:
        """The volume tiers in force (empty if none); ``billed_rate`` marked up for ``waba_id``."""
        timeline = self._tiers.get((market, currency, category))
        found = (timeline.at(day) if timeline else None) or ()
        if waba_id is None:
            return found
        return tuple(replace(t, billed_rate=self.billed(t.rate, waba_id)) for t in found)

    def billed(self, amount: Decimal, waba_id: str) -> Decimal:
        """``amount`` with the WABA's markup (unchanged without a markup row)."""
        markup = self._markups.get(waba_id)
        if markup is None:
            return amount
        return amount * (1 + markup.percent / 100) + markup.fixed_per_unit

    def rate_unit(self, unit: Unit, waba_id: str, user_id: str) -> Rating:
        """Rate ``unit`` sent by ``waba_id`` to ``user_id``, on its local charge date, in the
        WABA's currency in force that day, from that currency's rates and tiers of that day."""
        waba = self.waba(waba_id)
        day = local_date(unit.charge_time, waba.timezone)
        country, source = self.country_of(user_id)
        market = self.market(country, day)
        currency = waba.currency_on(day)
        # A unit with an unknown pricing.type is never priced (rule book 9.3).
        rate = None if unit.unrated else self.rate(market, unit.category, currency, day)
        return Rating(
            country=country,
            country_source=source,
            market=market,
            currency=currency,
            rate=rate,
            billed_rate=self._billed_rate(rate, waba_id),
            tiers=() if unit.unrated else self.tiers(market, unit.category, currency, day, waba_id),
        )

    def _rate_at(self, key: RateKey, day: date) -> Decimal | None:
        timeline = self._rates.get(key)
        return timeline.at(day) if timeline else None

    def _billed_rate(self, rate: Decimal | None, waba_id: str) -> Decimal | None:
        """Markup applies to what Meta charges for: a zero list price stays zero."""
        if rate is None or rate == 0:
            return rate
        return self.billed(rate, waba_id)


# -- helpers ---------------------------------------------------------------------------------


def local_date(timestamp: int, tz: ZoneInfo) -> date:
    """The calendar date of ``timestamp`` (Unix seconds) in ``tz``."""
    return datetime.fromtimestamp(timestamp, tz).date()


def country_of(user_id: str) -> tuple[str | None, str]:
    """``(country, source)``: from phone digits (``"phone"``), a BSUID prefix (``"bsuid"``)."""
    text = user_id.strip()
    phone = _PHONE.fullmatch(text)
    if phone:
        country = _phone_country(phone.group(1))
        return (country, PHONE) if country else (None, UNKNOWN)
    bsuid = _BSUID.fullmatch(text)
    if bsuid:
        return bsuid.group(1).upper(), BSUID
    return None, UNKNOWN


@lru_cache(maxsize=1024)
def main_country(country: str | None) -> str | None:
    """The main country of ``country``'s calling code (GG, JE, IM -> GB; PR -> US; KZ -> RU);
    None when it is its own main country or has no calling code."""
    if not country:
        return None
    code = phonenumbers.country_code_for_region(country)
    main = phonenumbers.region_code_for_country_code(code) if code else None
    return None if main in _NO_REGION or main == country else main


# Calling codes (prefix-free) -> their one region, where a code has one: the region of any
# number under such a code is that region (phonenumbers' region_code_for_number says so
# without validating), so the costly parse is only needed for shared codes (+1, +7, +44...).
_CALLING_CODES = {str(code): regions for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()}
_ONE_REGION = {
    code: regions[0]
    for code, regions in _CALLING_CODES.items()
    if len(regions) == 1 and regions[0] not in _NO_REGION
}


@lru_cache(maxsize=65_536)
def _phone_country(digits: str) -> str | None:
    """The region of ``+digits`` by number (NANP area code, +7 prefix), else by calling code."""
    for size in (1, 2, 3):
        code = digits[:size]
        if code in _CALLING_CODES:
            if code in _ONE_REGION and 2 <= len(digits) - size <= 14:
                return _ONE_REGION[code]
            break
    return _parsed_country(digits)


def _parsed_country(digits: str) -> str | None:
    """``_phone_country`` by phonenumbers' full parse (the reference of the shortcut above)."""
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    if region in _NO_REGION:
        region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return None if region in _NO_REGION else region


def _timelines(entries: Iterable[tuple[K, date, T]]) -> dict[K, Timeline[T]]:
    grouped: dict[K, list[tuple[date, T]]] = defaultdict(list)
    for key, day, value in entries:
        grouped[key].append((day, value))
    return {key: Timeline(items) for key, items in grouped.items()}


def _tier_timelines(rows: Iterable[TierRow]) -> dict[RateKey, Timeline[tuple[Tier, ...]]]:
    """Rows grouped by key and effective date, each group a tier tuple sorted by volume."""
    groups: dict[tuple[RateKey, date], list[Tier]] = defaultdict(list)
    for r in rows:
        groups[(r.key, r.effective_from)].append(Tier(r.from_volume, r.to_volume, r.rate, r.rate))
    by_key: dict[RateKey, list[tuple[date, tuple[Tier, ...]]]] = defaultdict(list)
    for (key, day), tiers in groups.items():
        by_key[key].append((day, tuple(sorted(tiers, key=lambda t: t.from_volume))))
    return {key: Timeline(items) for key, items in by_key.items()}

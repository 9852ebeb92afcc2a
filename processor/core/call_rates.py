"""Calling rates: per-minute prices and whole-call minute tiers (rule book §8.1.4 to 8.1.7).

Configuration, never invented: ``calling_rates.csv`` gives one rate per minute per (market,
currency) from a date; ``calling_tiers.csv`` gives minute bands ``(from_minutes, to_minutes]``.
Where a market has tiers in force they win; a flat rate is one unbounded band; neither: the
call is unrated (rate and cost null). Pure; rows come from ``processor.config_files``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from processor.core.calls import CallTier

CallKey = tuple[str, str]  # (market, currency)
ZERO = Decimal(0)


@dataclass(frozen=True)
class CallingRateRow:
    effective_from: date
    market: str
    currency: str
    rate_per_minute: Decimal

    @property
    def key(self) -> CallKey:
        return (self.market, self.currency)


@dataclass(frozen=True)
class CallingTierRow:
    """One band of a month's billed minutes, ``(from_minutes, to_minutes]``, whole-call."""

    effective_from: date
    market: str
    currency: str
    from_minutes: Decimal
    to_minutes: Decimal | None
    rate_per_minute: Decimal

    @property
    def key(self) -> CallKey:
        return (self.market, self.currency)


class CallingBook:
    """The calling tiers in force for a market, currency and local date."""

    def __init__(
        self, rates: Iterable[CallingRateRow] = (), tiers: Iterable[CallingTierRow] = ()
    ) -> None:
        self._flat: dict[CallKey, list[tuple[date, tuple[CallTier, ...]]]] = defaultdict(list)
        for r in rates:
            self._flat[r.key].append((r.effective_from, (CallTier(ZERO, None, r.rate_per_minute),)))
        bands: dict[CallKey, dict[date, list[CallTier]]] = defaultdict(lambda: defaultdict(list))
        for t in tiers:
            bands[t.key][t.effective_from].append(
                CallTier(t.from_minutes, t.to_minutes, t.rate_per_minute)
            )
        self._tiered = {
            key: [
                (day, tuple(sorted(b, key=lambda x: x.from_minutes))) for day, b in by_day.items()
            ]
            for key, by_day in bands.items()
        }

    def tiers(self, market: str, currency: str, day: date) -> tuple[CallTier, ...]:
        """The bands in force on ``day``: tiers where some are, else the flat rate, else none."""
        key = (market, currency)
        return _latest(self._tiered.get(key, ()), day) or _latest(self._flat.get(key, ()), day)

    def __bool__(self) -> bool:
        return bool(self._flat or self._tiered)


def _latest(dated: Iterable[tuple[date, tuple[CallTier, ...]]], day: date) -> tuple[CallTier, ...]:
    found: tuple[date, tuple[CallTier, ...]] | None = None
    for since, bands in dated:
        if since <= day and (found is None or since >= found[0]):
            found = (since, bands)
    return found[1] if found else ()

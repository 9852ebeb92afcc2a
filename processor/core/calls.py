"""Calls: what one connected call costs (rule book §8), pure.

Meta charges business-initiated calls (BIC) by 6-second pulses of connected time, at a per-minute
rate of the callee's market, with monthly minute tiers per portfolio × callee market. Unlike the
marginal message tiers, a call's tier is chosen **whole**: by the bucket's running total of
billed minutes *after* the call, bounds inclusive on the upper side (§8.1.7). User-initiated calls
(UIC) are free and never accrue (§8.1.1, §8.4).

Everything here takes its facts as arguments: no clock, no store. Minutes are kept as whole
pulses (tenths of a minute), so every sum is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

PULSE_SECONDS = 6
PULSES_PER_MINUTE = 10
BUSINESS_INITIATED, USER_INITIATED = "business_initiated", "user_initiated"
DURATION_MISMATCH = "call_duration_mismatch"
FREE_USER_INITIATED = "free_user_initiated"
MISMATCH_TOLERANCE_S = 1


def pulses(duration_s: int) -> int:
    """Connected seconds in 6-second pulses, a fraction counting as a whole pulse (§8.1.3)."""
    if duration_s < 0:
        raise ValueError("a call duration cannot be negative")
    return -(-duration_s // PULSE_SECONDS)


def billed_minutes(pulse_count: int) -> Decimal:
    """Pulses as minutes, exactly: one decimal place (§8.1.3)."""
    return Decimal(pulse_count) / PULSES_PER_MINUTE


def call_cost(pulse_count: int, rate_per_minute: Decimal) -> Decimal:
    """``pulses × rate / 10``, exact: never rounded per pulse (§8.1.5)."""
    return pulse_count * rate_per_minute / PULSES_PER_MINUTE


@dataclass(frozen=True, slots=True)
class Terminate:
    """What a ``terminate`` webhook says of a call (times in Unix seconds)."""

    call_id: str
    direction: str  # BUSINESS_INITIATED | USER_INITIATED
    status: str  # COMPLETED | FAILED (upper case)
    timestamp: int
    start_time: int | None = None
    end_time: int | None = None
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """The connected part of a call: how long it lasted and where the numbers came from."""

    duration_s: int
    discrepancy: str | None

    @property
    def pulses(self) -> int:
        return pulses(self.duration_s)

    @property
    def minutes(self) -> Decimal:
        return billed_minutes(self.pulses)


def connected(call: Terminate) -> Connected | None:
    """The call's connected time, or ``None`` when it was never picked up (§8.1.2, §8.1.10).

    ``duration`` wins over ``end_time − start_time``; a difference over a second is a
    discrepancy. A call whose status is FAILED but that has a duration was connected (§8.1.11).
    """
    span = None
    if call.start_time is not None and call.end_time is not None:
        span = call.end_time - call.start_time
    seconds = call.duration if call.duration is not None else span
    if not seconds or seconds <= 0:
        return None
    mismatch = span is not None and abs(span - seconds) > MISMATCH_TOLERANCE_S
    return Connected(seconds, DURATION_MISMATCH if mismatch else None)


def charge_time(call: Terminate) -> int:
    """``end_time`` of the terminate, else its ``timestamp`` (§8.1.9)."""
    return call.end_time if call.end_time is not None else call.timestamp


def window_opened_at(
    direction: str,
    *,
    connect_at: int | None = None,
    accepted_at: int | None = None,
    terminate: Terminate | None = None,
) -> int | None:
    """When a call opens or refreshes the customer service window, if it does (§8.2).

    A UIC does at its earliest event, answered or not; a BIC only once the user accepted it
    (the ``ACCEPTED`` status, else the terminate's ``start_time``, present only if picked up).
    """
    start = terminate.start_time if terminate is not None else None
    if direction == USER_INITIATED:
        seen = [t for t in (connect_at, start) if t is not None]
        if seen:
            return min(seen)
        return terminate.timestamp if terminate is not None else None
    return accepted_at if accepted_at is not None else start


# -- whole-call minute tiers -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallTier:
    """A band of a month's billed minutes ``(from_minutes, to_minutes]``; ``None``: no end."""

    from_minutes: Decimal
    to_minutes: Decimal | None
    rate_per_minute: Decimal

    def holds(self, minutes: Decimal) -> bool:
        return self.from_minutes < minutes and (
            self.to_minutes is None or minutes <= self.to_minutes
        )

    @property
    def label(self) -> str:
        """Meta's spelling: ``"50001:250000"``, ``"0:50000"``, ``"5000001:MAX"``."""
        low = self.from_minutes + 1 if self.from_minutes else self.from_minutes
        high = "MAX" if self.to_minutes is None else _plain(self.to_minutes)
        return f"{_plain(low)}:{high}"


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def tier_after(tiers: Sequence[CallTier], minutes_after: Decimal) -> CallTier | None:
    """The tier whose range holds the bucket's total after the call (§8.1.7)."""
    return next((t for t in tiers if t.holds(minutes_after)), None)


@dataclass(frozen=True, slots=True)
class PricedCall:
    """One charged call at its place in its tier bucket."""

    call_id: str
    pulses: int
    minutes_after: Decimal
    tier: CallTier | None

    @property
    def rate(self) -> Decimal | None:
        return None if self.tier is None else self.tier.rate_per_minute

    @property
    def cost(self) -> Decimal | None:
        return None if self.tier is None else call_cost(self.pulses, self.tier.rate_per_minute)


def price_bucket(
    calls: Iterable[tuple[int, str, int]],
    tiers: Sequence[CallTier],
    minutes_before: Decimal = Decimal(0),
) -> list[PricedCall]:
    """Price the charged calls of one bucket (portfolio × callee market × month).

    ``calls`` are ``(charge_time, call_id, pulses)`` in any order: they are numbered by
    (charge time, call id) (§8.1.8), so a late call re-prices the ones after it.
    ``minutes_before`` is what the bucket held before the first of them.
    """
    tenths = minutes_before * PULSES_PER_MINUTE
    if tenths != tenths.to_integral_value():
        raise ValueError("a bucket holds whole pulses (tenths of a minute)")
    total = int(tenths)
    priced = []
    for _, call_id, count in sorted(calls):
        total += count
        after = billed_minutes(total)
        priced.append(PricedCall(call_id, count, after, tier_after(tiers, after)))
    return priced

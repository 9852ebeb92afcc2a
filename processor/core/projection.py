"""Month-to-date arithmetic for the dashboard: how much of a month has passed, and a linear
projection of a month-to-date amount to the month's end. Pure (the caller passes the time)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

PLACES = Decimal("0.0001")


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of ``month`` (YYYY-MM) in ``tz`` and of the month after it."""
    year, number = (int(x) for x in month.split("-"))
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start, end


def elapsed(month: str, now: int, tz: ZoneInfo) -> Decimal:
    """The share of ``month`` that has passed at ``now`` (Unix seconds): 0 before, 1 after."""
    start, end = (int(x.timestamp()) for x in month_bounds(month, tz))
    if now <= start:
        return Decimal(0)
    if now >= end:
        return Decimal(1)
    return Decimal(now - start) / Decimal(end - start)


def project(amount: Decimal, share: Decimal) -> Decimal | None:
    """``amount`` so far, extended at the same pace to the month's end (None before any of the
    month has passed); rounded to 4 decimal places, since it is an estimate."""
    if share <= 0:
        return None
    return (amount / share).quantize(PLACES, rounding=ROUND_HALF_EVEN)


def days_of(month: str, tz: ZoneInfo) -> list[str]:
    """Every day of ``month`` as YYYY-MM-DD."""
    start, end = month_bounds(month, tz)
    count = (end.date() - start.date()).days
    return [f"{month}-{d:02d}" for d in range(1, count + 1)]

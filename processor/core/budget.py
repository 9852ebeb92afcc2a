"""Monthly budgets: which thresholds a month's billed cost has crossed, how much is used.

Pure: the storage layer reads the month's billed cost (the same usage query as ``/v1/usage``)
and records an alert for each threshold this returns; recording is once per occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

ANY_WABA = "*"
MAX_THRESHOLD = 1000  # percent
_THRESHOLDS = re.compile(r"[0-9]{1,4}(;[0-9]{1,4})*")
_AMOUNT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,10})?")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class Budget:
    """A monthly budget of billed cost (with markup), in ``currency``, and the percentages of
    it at which an alert fires."""

    waba_id: str  # a WABA id, or ``*`` for every WABA without its own
    monthly_budget: Decimal
    currency: str
    thresholds: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "waba_id": self.waba_id,
            "monthly_budget": format(self.monthly_budget, "f"),
            "currency": self.currency,
            "thresholds": list(self.thresholds),
        }

    def limit_of(self, threshold: int) -> Decimal:
        """The billed cost at which ``threshold`` (percent) is reached."""
        return self.monthly_budget * threshold / 100

    def crossed(self, billed: Decimal) -> tuple[int, ...]:
        """The thresholds that ``billed`` has reached (a 0 budget is reached by any cost)."""
        return tuple(t for t in self.thresholds if billed > 0 and billed >= self.limit_of(t))

    def used_ratio(self, billed: Decimal) -> Decimal | None:
        """Billed cost / budget; None for a zero budget."""
        return None if self.monthly_budget == 0 else billed / self.monthly_budget

    def over_budget(self, billed: Decimal, extra: Decimal) -> bool:
        """Whether spending ``extra`` more would take the month past the budget."""
        return billed + extra > self.monthly_budget


def parse_thresholds(text: str) -> tuple[int, ...]:
    """``50;80;100`` -> (50, 80, 100): percentages from 1 to 1000, strictly increasing."""
    if not _THRESHOLDS.fullmatch(text):
        raise ValueError(f"thresholds {text!r} must be percentages separated by ';' (50;80;100)")
    values = tuple(int(v) for v in text.split(";"))
    if any(not 1 <= v <= MAX_THRESHOLD for v in values):
        raise ValueError(f"thresholds {text!r}: each must be from 1 to {MAX_THRESHOLD}")
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"thresholds {text!r} must be strictly increasing")
    return values


def parse_amount(text: str) -> Decimal:
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f"monthly_budget {text!r} is not a plain decimal number (like 500.00)")
    return Decimal(text)


def parse_currency(text: str) -> str:
    if not _CURRENCY.fullmatch(text):
        raise ValueError(f"currency {text!r} is not 3 upper-case letters (like USD)")
    return text


def budget_from(waba_id: str, amount: str, currency: str, thresholds: str) -> Budget:
    """A budget from its four text fields; ValueError naming the first bad one."""
    return Budget(
        waba_id, parse_amount(amount), parse_currency(currency), parse_thresholds(thresholds)
    )

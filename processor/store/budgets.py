"""Budgets: the one that applies to a WABA (a Redis override, else budgets.csv, else ``*``),
and the check that records a budget alert once per (WABA, month, threshold).

The month's billed cost is read with :meth:`Queries.usage`, the query behind ``/v1/usage``.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import redis

from processor.core.budget import ANY_WABA, Budget, budget_from
from processor.core.policies import local_month
from processor.core.rating import RateBook
from processor.store import codec
from processor.store.alerts import Alerts
from processor.store.keys import Keys
from processor.store.queries import Queries

log = logging.getLogger(__name__)
BUDGET = "budget"  # the alert kind


class Budgets:
    def __init__(
        self, client: redis.Redis, keys: Keys, ratebook: RateBook, file: dict[str, Budget]
    ) -> None:
        self.redis, self.keys, self.ratebook, self.file = client, keys, ratebook, file

    # -- which budget ----------------------------------------------------------------------------

    def get(self, waba_id: str) -> tuple[Budget | None, str]:
        """The budget of ``waba_id`` and where it comes from (override, file, default, none)."""
        raw = self.redis.hget(self.keys.budgets, waba_id)
        if raw:
            doc = json.loads(raw)
            return budget_from(
                waba_id, doc["monthly_budget"], doc["currency"], _joined(doc["thresholds"])
            ), "override"
        if waba_id in self.file:
            return self.file[waba_id], "file"
        if ANY_WABA in self.file:
            default = self.file[ANY_WABA]
            return Budget(waba_id, default.monthly_budget, default.currency,
                          default.thresholds), "default"  # fmt: skip
        return None, "none"

    def month_now(self, waba_id: str, now: int) -> str:
        """The WABA's current billing month (in its time zone)."""
        return local_month(now, self.ratebook.waba(waba_id).timezone)

    def put(self, budget: Budget) -> None:
        """Store an override for one WABA (wins over budgets.csv)."""
        self.redis.hset(self.keys.budgets, budget.waba_id, json.dumps(budget.to_json()))

    def known(self) -> list[str]:
        """WABAs with a budget of their own (override or file row)."""
        overrides = {codec.text(w) for w in self.redis.hkeys(self.keys.budgets)}
        return sorted(overrides | {w for w in self.file if w != ANY_WABA})

    # -- figures ----------------------------------------------------------------------------------

    def billed(self, waba_id: str, month: str) -> tuple[Decimal, str]:
        """The month's billed cost (with markup) and its currency, as ``/v1/usage`` says."""
        currency = self.ratebook.waba(waba_id).currency
        usage = Queries(self.redis, self.keys).usage(waba_id, month, currency)
        return Decimal(usage["total_billed_cost"]), usage["currency"]

    def status(self, waba_id: str, month: str) -> dict[str, Any]:
        """The budget, where it comes from, and how much of it the month has used."""
        budget, source = self.get(waba_id)
        out: dict[str, Any] = {"waba_id": waba_id, "month": month, "source": source}
        if budget is None:
            return {**out, "budget": None, "billed_cost": None, "currency": None,
                    "used_ratio": None, "thresholds_crossed": []}  # fmt: skip
        billed, currency = self.billed(waba_id, month)
        comparable = currency == budget.currency
        ratio = budget.used_ratio(billed) if comparable else None
        return {
            **out,
            "budget": budget.to_json(),
            "billed_cost": format(billed, "f"),
            "currency": currency,
            "used_ratio": None if ratio is None else format(round(ratio, 6), "f"),
            "thresholds_crossed": list(budget.crossed(billed)) if comparable else [],
        }

    def over_budget(self, waba_id: str, month: str, extra: Decimal) -> bool | None:
        """Whether ``extra`` more billed cost would take the month past the budget (None: no
        budget, or one in another currency)."""
        budget, _ = self.get(waba_id)
        if budget is None:
            return None
        billed, currency = self.billed(waba_id, month)
        if currency != budget.currency:
            return None
        return budget.over_budget(billed, extra)

    # -- alerts -----------------------------------------------------------------------------------

    def check(self, waba_id: str, month: str) -> list[dict[str, Any]]:
        """Record an alert for every threshold the month has crossed; return those recorded by
        this call (an alert is recorded once, whoever checks and however often)."""
        budget, _ = self.get(waba_id)
        if budget is None:
            return []
        billed, currency = self.billed(waba_id, month)
        if currency != budget.currency:
            log.warning("budget of WABA %s is in %s, its cost in %s: not checked",
                        waba_id, budget.currency, currency)  # fmt: skip
            return []
        alerts = Alerts(self.redis, self.keys)
        recorded = []
        for threshold in budget.crossed(billed):
            data = {
                "waba_id": waba_id,
                "month": month,
                "threshold": threshold,
                "monthly_budget": format(budget.monthly_budget, "f"),
                "billed_cost": format(billed, "f"),
                "currency": currency,
            }
            alert = alerts.record(
                kind=BUDGET, dedup=f"{waba_id}|{month}|{threshold}", data=data, waba_id=waba_id
            )
            if alert is not None:
                log.info("budget alert %s: WABA %s %s crossed %d%%",
                         alert["id"], waba_id, month, threshold)  # fmt: skip
                recorded.append(alert)
        return recorded


def _joined(thresholds: list[int]) -> str:
    return ";".join(str(t) for t in thresholds)

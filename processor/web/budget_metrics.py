"""Prometheus: the share of its monthly budget each WABA has used, and alerts sent/failed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from processor.context import Context
from processor.core.budget import ANY_WABA
from processor.store import codec
from processor.store.budgets import Budgets


class BudgetCollector(Collector):
    """Read at scrape time; the month is each WABA's current one (in its time zone)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._metrics())
        except redis.RedisError:  # the Redis collector reports wa_billing_redis_up 0
            return
        yield from metrics

    def _metrics(self) -> Iterator[Metric]:
        ctx = self.ctx
        budgets = Budgets(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.budget_file)
        ratio = GaugeMetricFamily(
            "wa_billing_budget_used_ratio",
            "Billed cost of the current month / monthly budget, per WABA with a budget",
            labels=["waba_id"],
        )
        now = int(time.time())
        for waba in self._wabas(budgets, now):
            month = budgets.month_now(waba, now)
            used = budgets.status(waba, month)["used_ratio"]
            if used is not None:
                ratio.add_metric([waba], float(used))
        yield ratio
        stats = {codec.text(k): int(v) for k, v in
                 codec.mapping(ctx.redis.hgetall(ctx.keys.stats)).items()
                 if codec.text(k).startswith("alerts_")}  # fmt: skip
        for name, what in (("sent", "delivered (2xx)"), ("failed", "given up on")):
            counter = CounterMetricFamily(f"wa_billing_alerts_{name}", f"Alerts {what}")
            counter.add_metric([], stats.get(f"alerts_{name}", 0))
            yield counter

    def _wabas(self, budgets: Budgets, now: int) -> list[str]:
        """WABAs with a budget of their own, and with ``*`` every WABA with records."""
        wabas = set(budgets.known())
        if ANY_WABA in budgets.file:
            wabas |= {waba for waba, _ in self.ctx.queries.months()}
        return sorted(wabas)

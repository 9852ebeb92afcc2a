"""After each drain batch: check the budgets of the WABA-months the batch touched.

A check records one alert per (WABA, month, threshold) crossed (see processor/store/budgets.py);
any number of workers may check the same month at once, and again after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from processor.context import Context
from processor.core.events import Event
from processor.core.policies import local_month
from processor.store.budgets import Budgets

log = logging.getLogger(__name__)


def budgets(ctx: Context) -> Budgets:
    return Budgets(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.budget_file)


def touched(ctx: Context, events: Iterable[Event]) -> set[tuple[str, str]]:
    """The (WABA, billing month) of each event's time, in the WABA's zone."""
    found: set[tuple[str, str]] = set()
    for event in events:
        waba = event.pair.waba_id
        found.add((waba, local_month(event.timestamp, ctx.ratebook.waba(waba).timezone)))
    return found


def check_after_batch(ctx: Context, events: Iterable[Event]) -> int:
    """Check the budgets the batch may have moved; return how many alerts were recorded.

    Never fails the batch: its events are applied already, and the next batch checks again."""
    if not ctx.budget_file and not ctx.redis.exists(ctx.keys.budgets):
        return 0
    watch = budgets(ctx)
    recorded = 0
    for waba, month in sorted(touched(ctx, events)):
        try:
            recorded += len(watch.check(waba, month))
        except Exception as exc:
            log.warning("budget check of WABA %s %s failed (%s)", waba, month,
                        exc.__class__.__name__)  # fmt: skip
    return recorded

"""Several real worker processes racing over the same events end with the single-worker result,
and with the totals computed by hand for the traffic (not only those of another run)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from processor.context import Context, build_context
from processor.settings import load_settings
from tests import payloads as p
from tests.ledger_helpers import snapshot, write_config
from tests.rq_helpers import drain_with_workers
from workers.drain import drain, use_context

pytestmark = pytest.mark.e2e
T0 = 1_790_812_800 + 3 * 86_400  # October 2026: pmp-2026-10 (service allowance, tiers)
USERS = [f"5511977{n:06d}" for n in range(12)]  # few users: the same pairs in every body


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The conftest environment with a test-owned rate book (tests/ledger_helpers.py)."""
    return {**environ, "BILLING_CONFIG_DIR": str(write_config(tmp_path / "config"))}


# By hand, for traffic(7): 480 delivered messages in October 2026 (pmp-2026-10), one unit each:
# 227 service (free: the first 1,000 per business number), 117 marketing at 0.0625, 136 utility
# charged in the month's volume tiers (2 x 0.0068 + 2 x 0.0060 + 132 x 0.0050; utility is
# charged inside the customer service window from 2026-10) = 7.3125 + 0.0256 + 0.6600.
HAND_TOTALS = {"units": 480, "free_tier": 227, "marketing": 117, "utility": 136,
               "total_cost": "7.9981"}  # fmt: skip


def hand_totals(ctx: Context) -> dict[str, Any]:
    usage = ctx.queries.usage(p.WABA, "2026-10", "USD")
    count = {(line["category"], line["free_reason"]): line["count"] for line in usage["lines"]}
    return {
        "units": usage["units"],
        "free_tier": count.get(("service", "free_tier"), 0),
        "marketing": count.get(("marketing", None), 0),
        "utility": count.get(("utility", None), 0),
        "total_cost": usage["total_cost"],
    }


def traffic(seed: int = 7) -> list[bytes]:
    """Bodies touching the same few pairs, with sent/delivered/read out of order."""
    rng = random.Random(seed)
    bodies = []
    for b in range(60):
        statuses, messages = [], []
        for k in range(8):
            n = b * 8 + k
            user = rng.choice(USERS)
            t = T0 + rng.randrange(0, 2 * 86_400)
            category = rng.choice(["service", "utility", "marketing", "service"])
            # Meta's answer from 2026-10 (rule book 9.3): every service message here is inside
            # the number's free tier
            ptype = "free_customer_service" if category == "service" else "regular"
            if rng.random() < 0.2:
                messages.append(p.inbound(f"wamid.in{n}", t - 60, user))
            for state, dt in rng.sample([("sent", -2), ("delivered", 0), ("read", 30)], 3):
                statuses.append(
                    p.status(
                        f"wamid.{n}",
                        state,
                        t + dt,
                        user=user,
                        category=category,
                        pricing_type=ptype,
                    )
                )
        bodies.append(p.raw(p.body(p.change(messages=messages, statuses=statuses))))
    return bodies


def reference(environ: dict[str, str], bodies: list[bytes]) -> dict[str, Any]:
    """One worker, the ledger on the standalone Redis (whatever ``environ`` says)."""
    alone = {k: v for k, v in environ.items() if not k.startswith("LEDGER_")}
    settings = load_settings({**alone, "REDIS_PREFIX": environ["REDIS_PREFIX"] + "ref"})
    ctx = build_context(settings)
    try:
        for body in bodies:
            ctx.inbox.push(body)
        use_context(ctx)
        drain(max_seconds=120)
        return snapshot(ctx.redis, settings.redis_prefix)
    finally:
        keys = list(ctx.redis.scan_iter(f"{settings.redis_prefix}:*"))
        if keys:
            ctx.redis.delete(*keys)


def test_racing_workers_end_with_the_single_worker_result(
    environ: dict[str, str], ctx: Context
) -> None:
    bodies = traffic()
    expected = reference(environ, bodies)
    assert len(expected["records"]) > 300
    racing = bodies + list(reversed(bodies))  # every event twice, in both orders
    for body in racing:
        ctx.inbox.push(body)
    env = {**environ, "DRAIN_BATCH_BODIES": "3", "JANITOR_INTERVAL_SECONDS": "0.3"}
    drain_with_workers(ctx, env, 3)
    assert snapshot(ctx.ledger_redis, ctx.settings.redis_prefix) == expected
    assert hand_totals(ctx) == HAND_TOTALS
    # the workers really raced: some of their decisions lost the compare-and-set
    conflicts = int(ctx.redis.hget(ctx.keys.stats, "apply_conflicts") or 0)
    assert conflicts > 0, "no compare-and-set conflict: the workers never raced"

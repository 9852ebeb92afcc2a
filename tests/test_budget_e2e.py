"""Budget alerts end to end: two real worker processes drain traffic that crosses three
thresholds, their couriers deliver to a real receiver that fails, times out, then accepts;
the workers are stopped, a new one starts and the same traffic comes again: still exactly one
alert per threshold, each accepted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.context import Context
from processor.store.alerts import Alerts
from tests import payloads as p
from tests.alert_receiver import ALERT_SECRET, TIMEOUT, Receiver
from tests.fault_helpers import Processes, wait_for
from tests.money_helpers import T0, brazil_users, config_dir, context_with

pytestmark = pytest.mark.e2e
BUDGET = f"waba_id,monthly_budget,currency,thresholds\n{p.WABA},1.00,USD,50;80;100\n"


def bodies() -> list[bytes]:
    """16 marketing messages in Brazil (0.0625 each: 1.00 in all), 2 per body."""
    users = brazil_users(16)
    statuses = [p.status(f"wamid.e{i}", "delivered", T0 + 60 * i, user=u, category="marketing",
                         pricing_type="regular") for i, u in enumerate(users)]  # fmt: skip
    return [p.raw(p.body(p.change(statuses=statuses[k : k + 2]))) for k in range(0, 16, 2)]


def test_alerts_once_under_two_racing_workers_a_flaky_receiver_and_a_restart(
    environ: dict[str, str], tmp_path: Path
) -> None:
    with Receiver(["fail", "hang", "ok"]) as receiver:
        env = {
            **environ,
            "BILLING_CONFIG_DIR": str(config_dir(tmp_path, budgets=BUDGET)),
            "ALERT_WEBHOOK_URL": receiver.url,
            "ALERT_WEBHOOK_SECRET": ALERT_SECRET,
            "ALERT_TIMEOUT_SECONDS": str(TIMEOUT),
            "ALERT_RETRY_SECONDS": "0.1",
            "DRAIN_BATCH_BODIES": "1",
            "JANITOR_INTERVAL_SECONDS": "0.3",
        }
        with context_with(env, Path(env["BILLING_CONFIG_DIR"])) as ctx:
            procs = Processes(tmp_path)
            try:
                for n in (1, 2):
                    procs.worker(f"worker{n}", env)
                run(ctx, bodies())
                ids = wait_delivered(ctx, 3)
                procs.stop_all()
                procs.worker("restarted", env)
                run(ctx, bodies())  # Meta delivers the same webhooks again
                wait_for(lambda: ctx.inbox.backlog()["pending"] == 0, 60, "the redelivery")
            finally:
                procs.stop_all()
            alerts = Alerts(ctx.redis, ctx.keys).all()
            assert sorted(a["data"]["threshold"] for a in alerts) == [50, 80, 100]
            assert {a["id"] for a in alerts} == ids
            for alert_id in ids:
                got = receiver.of(alert_id)
                assert len(got) == 3, [r[:2] for r in got]  # failed, timed out, accepted
                assert all(good for *_, good in got)
            assert ctx.redis.xlen(ctx.keys.alerts_outbox) == 3


def run(ctx: Context, payloads: list[bytes]) -> None:
    for body in payloads:
        ctx.inbox.push(body)
    for _ in range(2):  # a drain job for each worker: they read the inbox at once
        ctx.enqueue_drain()
    wait_for(lambda: sum(ctx.inbox.backlog().values()) == 0, 60, "the inbox to be drained")


def wait_delivered(ctx: Context, count: int) -> set[str]:
    alerts = Alerts(ctx.redis, ctx.keys)

    def done() -> bool:
        found = alerts.all()
        return len(found) == count and all(a["delivery"]["state"] == "sent" for a in found)

    wait_for(done, 60, "every alert to be delivered")
    return {a["id"] for a in alerts.all()}

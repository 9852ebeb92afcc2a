"""Alerts are recorded once per occurrence, whoever records them and however often."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from processor.context import Context
from processor.store.alerts import Alerts, alert_id


def test_alert_recorded_once_per_occurrence(ctx: Context) -> None:
    alerts = Alerts(ctx.redis, ctx.keys)
    first = alerts.record(kind="budget", dedup="w1|2026-11|80", data={"threshold": 80})
    again = alerts.record(kind="budget", dedup="w1|2026-11|80", data={"threshold": 80})
    other = alerts.record(kind="budget", dedup="w1|2026-11|100", data={"threshold": 100})
    assert first is not None and first["id"] == alert_id("budget", "w1|2026-11|80")
    assert again is None
    assert other is not None and other["id"] != first["id"]
    assert ctx.redis.xlen(ctx.keys.alerts_outbox) == 2
    assert [a["data"]["threshold"] for a in alerts.all()] in ([100, 80], [80, 100])


def test_alert_racing_recorders_store_one(ctx: Context) -> None:
    def record(_: int) -> bool:
        return Alerts(ctx.redis, ctx.keys).record(kind="k", dedup="d", data={}) is not None

    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(record, range(32)))
    assert created.count(True) == 1
    assert ctx.redis.xlen(ctx.keys.alerts_outbox) == 1


def test_alert_delivery_state_saved(ctx: Context) -> None:
    alerts = Alerts(ctx.redis, ctx.keys)
    alert = alerts.record(kind="k", dedup="d", data={"x": 1}, waba_id="w")
    assert alert is not None
    alert["delivery"] = {"state": "sent", "attempts": 1, "last_error": None}
    alerts.save(alert)
    stored = alerts.get(alert["id"])
    assert stored is not None and stored["delivery"]["state"] == "sent"
    assert alerts.get("missing") is None

"""Alert delivery against a real local HTTP receiver: signed JSON POSTs with an id to
deduplicate on, retried with backoff through failures and timeouts until a 2xx, bounded, kept
as failed when the receiver never accepts; once-only under two racing couriers and a restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from processor.context import Context, build_context
from processor.store.alerts import Alerts
from processor.web import create_app
from tests.alert_receiver import ALERT_SECRET, TIMEOUT, Receiver
from tests.conftest import auth
from tests.money_helpers import config_dir, context_with
from workers.courier import Courier, backoff, payload


def courier_env(environ: dict[str, str], url: str, attempts: int = 5) -> dict[str, str]:
    return {
        **environ,
        "ALERT_WEBHOOK_URL": url,
        "ALERT_WEBHOOK_SECRET": ALERT_SECRET,
        "ALERT_TIMEOUT_SECONDS": str(TIMEOUT),
        "ALERT_RETRY_SECONDS": "0.1",
        "ALERT_MAX_ATTEMPTS": str(attempts),
    }


@pytest.fixture
def tmp_config(tmp_path: Path) -> Path:
    return config_dir(tmp_path)


def record_alerts(ctx: Context, n: int) -> list[str]:
    alerts = Alerts(ctx.redis, ctx.keys)
    ids = []
    for k in range(n):
        data = {"waba_id": "1", "month": "2025-11", "threshold": 50 + k}
        made = alerts.record(kind="budget", dedup=f"1|2025-11|{50 + k}", data=data, waba_id="1")
        assert made is not None
        ids.append(made["id"])
    return ids


def run_couriers(couriers: list[Courier], done: Any, seconds: float = 30.0) -> None:
    """Each courier ticks in its own thread until ``done()`` or the time is up."""
    deadline = time.monotonic() + seconds

    def loop(courier: Courier) -> None:
        while time.monotonic() < deadline and not done():
            courier.tick()
            time.sleep(0.02)

    threads = [threading.Thread(target=loop, args=(c,)) for c in couriers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_delivered_once_through_a_failure_and_a_timeout_by_two_racing_couriers_and_a_restart(
    environ: dict[str, str], tmp_config: Path
) -> None:
    """Three alerts; the receiver answers 500, then hangs past the timeout, then 200. Two
    couriers race; each alert is POSTed exactly three times (never twice at once), signed,
    with its id; a restarted courier posts nothing more."""
    with Receiver(["fail", "hang", "ok"]) as receiver:
        env = courier_env(environ, receiver.url)
        with context_with(env, tmp_config) as ctx:
            ids = record_alerts(ctx, 3)
            alerts = Alerts(ctx.redis, ctx.keys)
            second = build_context(ctx.settings)
            couriers = [Courier(ctx, "a"), Courier(second, "b")]

            def done() -> bool:
                return all(alerts.get(i)["delivery"]["state"] != "pending" for i in ids)

            run_couriers(couriers, done)
            assert done()
            for alert_id in ids:
                got = receiver.of(alert_id)
                assert len(got) == 3, [r[:2] for r in got]
                assert all(good for *_, good in got)  # every POST signed right
                assert {r[2]["id"] for r in got} == {alert_id}
                assert got[0][2] == payload_doc(alerts.get(alert_id))
                # backoff: the retry after the first failure waited at least 0.1 s
                assert got[1][0] - got[0][0] >= backoff(1, 0.1) - 0.01
                # the hung second POST was given up after the timeout, then backed off
                assert got[2][0] - got[1][0] >= TIMEOUT + backoff(2, 0.1) - 0.01
                delivery = alerts.get(alert_id)["delivery"]
                assert delivery["state"] == "sent"
                assert delivery["attempts"] == 3
            # a restart: new process, new courier, same Redis
            restarted = Courier(build_context(ctx.settings), "c")
            for _ in range(5):
                assert restarted.tick() == 0
            assert len(receiver.requests) == 9
            assert int(ctx.redis.hget(ctx.keys.stats, "alerts_sent")) == 3
            second.close()


def payload_doc(alert: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(payload(alert))
    return doc


def test_a_receiver_that_never_accepts_leaves_the_alert_failed_and_shown(
    environ: dict[str, str], tmp_config: Path
) -> None:
    """Bounded: after ALERT_MAX_ATTEMPTS failures the alert is kept as failed, listed by
    /v1/alerts with its last error, counted in /metrics, and not posted again."""
    with Receiver(["fail"]) as receiver:
        env = courier_env(environ, receiver.url, attempts=3)
        with context_with(env, tmp_config) as ctx:
            [alert_id] = record_alerts(ctx, 1)
            alerts = Alerts(ctx.redis, ctx.keys)
            courier = Courier(ctx, "a")
            run_couriers([courier], lambda: alerts.get(alert_id)["delivery"]["state"] != "pending")
            for _ in range(3):
                courier.tick(time.time() + 3600)
            assert len(receiver.of(alert_id)) == 3
            client = create_app(ctx=ctx).test_client()
            listed = client.get("/v1/alerts?state=failed", headers=auth()).json
            assert listed["total"] == 1
            assert listed["items"][0]["delivery"]["last_error"] == "HTTP 500"
            assert listed["items"][0]["delivery"]["attempts"] == 3
            assert client.get("/v1/alerts?state=sent", headers=auth()).json["total"] == 0
            text = client.get("/metrics").data.decode()
            assert "wa_billing_alerts_failed_total 1.0" in text


def test_no_receiver_listening_is_retried_not_lost(
    environ: dict[str, str], tmp_config: Path
) -> None:
    """A refused connection is a failed attempt (ConnectionError), retried later."""
    with Receiver(["ok"]) as receiver:
        url = receiver.url
    env = courier_env(environ, url)  # the receiver is gone: connections are refused
    with context_with(env, tmp_config) as ctx:
        [alert_id] = record_alerts(ctx, 1)
        Courier(ctx, "a").tick()
        delivery = Alerts(ctx.redis, ctx.keys).get(alert_id)["delivery"]
        assert delivery["state"] == "pending"
        assert delivery["attempts"] == 1
        assert delivery["last_error"] == "ConnectionError"
        assert delivery["next_attempt_at"] > delivery["last_attempt_at"]


def test_alert_webhook_url_needs_a_secret(environ: dict[str, str]) -> None:
    from processor.errors import SettingsError
    from processor.settings import load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings({**environ, "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    assert "ALERT_WEBHOOK_SECRET is required" in str(caught.value)
    with pytest.raises(SettingsError):
        load_settings({**environ, "ALERT_WEBHOOK_URL": "ftp://x/y", "ALERT_WEBHOOK_SECRET": "s"})


def test_alerts_list_filters_and_needs_the_token(client: Any, ctx: Context) -> None:
    record_alerts(ctx, 2)
    assert client.get("/v1/alerts").status_code == 401
    listed = client.get("/v1/alerts", headers=auth()).json
    assert listed["total"] == 2
    assert all(a["delivery"]["state"] == "pending" for a in listed["items"])
    assert client.get("/v1/alerts?kind=drift", headers=auth()).json["total"] == 0
    assert client.get("/v1/alerts?state=nope", headers=auth()).status_code == 400

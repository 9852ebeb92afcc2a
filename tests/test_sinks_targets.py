"""The HTTP sinks against local servers that answer as each API documents: signed webhook,
OpenMeter, Lago, Stripe. Duplicates, corrections, parking and replay, a target away and back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.context import Context, build_context
from processor.settings import load_settings
from processor.sinks import build_sinks
from processor.sinks.runner import Runner
from processor.store.sinkstate import SentStore
from tests.conftest import _wipe, auth
from tests.sink_helpers import (
    config_with_accounts,
    feed_versions,
    lago_sums,
    openmeter_sums,
    push,
    record,
    sink_environ,
    stripe_sums,
)
from tests.sink_targets import SECRET, Lago, OpenMeter, Stripe, Target, Webhook, serve

WABA = "310000000000001"
NOW_MONTH = "2026-11"


@pytest.fixture
def targets() -> Iterator[dict[str, Target]]:
    made: dict[str, Target] = {"webhook": Webhook(), "openmeter": OpenMeter(), "lago": Lago(),
                               "stripe": Stripe()}  # fmt: skip
    made["lago"].subscriptions.add(f"sub_{WABA}")  # type: ignore[attr-defined]
    made["stripe"].now = lambda: 1_795_000_000  # type: ignore[attr-defined]  # 2026-11-18
    with serve(made["webhook"]) as w, serve(made["openmeter"]) as o, serve(made["lago"]) as la, \
            serve(made["stripe"]) as st:  # fmt: skip
        made["urls"] = {"webhook": w, "openmeter": o, "lago": la, "stripe": st}  # type: ignore[assignment]
        yield made


@pytest.fixture
def sctx(environ: dict[str, str], targets: dict[str, Any], tmp_path: Path) -> Iterator[Context]:
    config = config_with_accounts(tmp_path / "config", [WABA])
    env = sink_environ(environ, targets["urls"], None, config)
    context = build_context(load_settings(env))
    yield context
    _wipe(context.redis, context.settings)
    context.close()


def runner(ctx: Context, *names: str) -> Runner:
    made = build_sinks(ctx, names or None)
    for sink in made:
        if sink.name == "stripe":
            sink.clock = lambda: 1_795_000_000  # type: ignore[attr-defined]
    return Runner(ctx, made)


def burst(ctx: Context, *names: str) -> bool:
    return runner(ctx, *names).run(burst=True)


CHARGE = "2026-11-17T10:00:00Z"


def versions() -> list[dict[str, Any]]:
    """Three records; r1 corrected (cheaper), r2 moved to India, r3 voided."""
    return [
        record("r1", 1, charge_time=CHARGE), record("r2", 1, charge_time=CHARGE),
        record("r3", 1, charge_time=CHARGE),
        record("r1", 2, charge_time=CHARGE, cost="0.0500", billed_cost="0.0560"),
        record("r2", 2, charge_time=CHARGE, market="India", cost="0.0107", billed_cost="0.0120"),
        record("r3", 2, charge_time=CHARGE, void=True, billable=False, cost="0",
               billed_cost="0"),
    ]  # fmt: skip


EXPECTED = {"units": Decimal(2), "cost": Decimal("0.0607"), "billed_cost": Decimal("0.0680")}


def test_the_signed_webhook_gets_every_version_once_with_its_id(
    sctx: Context, targets: dict[str, Any]
) -> None:
    push(sctx, *versions())
    assert burst(sctx, "webhook")
    events = targets["webhook"].events
    assert set(events) == set(feed_versions(sctx))
    assert events["r1:2"]["record"]["cost"] == "0.0500"
    assert "bucket" not in events["r1:2"]["record"]  # internal fields stay inside


def test_a_webhook_refusing_one_version_parks_it_and_the_rest_flows(
    sctx: Context, targets: dict[str, Any]
) -> None:
    push(sctx, record("a", 1), record("b", 1, category="refuse-me"), record("c", 1))
    assert burst(sctx, "webhook")
    assert set(targets["webhook"].events) == {"a:1", "c:1"}
    parked = _cli(sctx, "sinks", "parked", "--sink", "webhook")
    (item,) = [json.loads(line) for line in parked.splitlines()]
    assert item["record_id"] == "b" and "HTTP 400" in item["reason"]


def test_openmeter_sums_follow_corrections(sctx: Context, targets: dict[str, Any]) -> None:
    push(sctx, *versions())
    assert burst(sctx, "openmeter")
    events = targets["openmeter"].events
    assert all(e["subject"] == WABA and e["source"] == "wa-billing" for e in events.values())
    assert {e["type"] for e in events.values()} == {"whatsapp_cost"}
    assert openmeter_sums(events)[(WABA, NOW_MONTH)] == EXPECTED
    by_market = {}
    for e in events.values():
        key = e["data"]["market"]
        by_market[key] = by_market.get(key, 0) + e["data"]["units"]
    assert by_market == {"Brazil": 1, "India": 1}


def test_lago_gets_deltas_and_a_retried_batch_is_deduplicated_by_its_422(
    sctx: Context, targets: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    push(sctx, *versions())
    calls = {"n": 0}
    real = SentStore.save

    def crash_once(self: SentStore, changes: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the process dies after Lago took the batch
        real(self, changes)

    monkeypatch.setattr(SentStore, "save", crash_once)
    with pytest.raises(KeyboardInterrupt):
        burst(sctx, "lago")
    assert targets["lago"].events  # Lago stored the first round
    assert burst(sctx, "lago")
    assert targets["lago"].duplicates > 0  # answered 422 value_already_exist, counted as sent
    assert lago_sums(targets["lago"].events)[(WABA, NOW_MONTH)] == EXPECTED
    assert {e["external_subscription_id"] for e in targets["lago"].events.values()} == {
        f"sub_{WABA}"
    }


def test_stripe_gets_form_encoded_deltas_and_duplicates_count_as_sent(
    sctx: Context, targets: dict[str, Any]
) -> None:
    push(sctx, *versions())
    assert burst(sctx, "stripe")
    sent = dict(targets["stripe"].events)
    assert stripe_sums(sent)[(WABA, NOW_MONTH)]["billed_cost"] == EXPECTED["billed_cost"]
    sctx.redis.delete(*sctx.redis.keys(f"{sctx.keys.prefix}:sink:stripe:sent:*"))
    push(sctx, *versions())  # everything again, as if the state were lost
    assert burst(sctx, "stripe")
    assert targets["stripe"].duplicates > 0 and targets["stripe"].events == sent
    assert _cli(sctx, "sinks", "parked", "--sink", "stripe") == ""


def test_a_waba_without_an_account_is_parked_then_replayed_after_the_fix(
    sctx: Context, targets: dict[str, Any]
) -> None:
    other = "310000000000009"
    push(
        sctx, record("x", 1, waba_id=other, charge_time=CHARGE), record("y", 1, charge_time=CHARGE)
    )
    assert burst(sctx, "stripe", "lago")
    assert set(targets["stripe"].events) == {"y:1"}
    parked = [json.loads(x) for x in _cli(sctx, "sinks", "parked").splitlines()]
    assert {(p["sink"], p["record_id"]) for p in parked} == {("lago", "x"), ("stripe", "x")}
    assert all("sinks.csv" in p["reason"] for p in parked)
    config = sctx.settings.config_dir / "sinks.csv"
    config.write_text(config.read_text() + f"{other},sub_{other},cus_{other}\n")
    targets["lago"].subscriptions.add(f"sub_{other}")
    _cli(sctx, "sinks", "replay", "stripe", "--all")
    _cli(sctx, "sinks", "replay", "lago", "--all")
    assert burst(sctx, "stripe", "lago")
    assert set(targets["stripe"].events) == {"y:1", "x:1"}
    assert set(targets["lago"].events) == {"y:1", "x:1"}
    assert _cli(sctx, "sinks", "parked") == ""


def test_stripe_refuses_timestamps_older_than_35_days_so_they_are_parked(
    sctx: Context, targets: dict[str, Any]
) -> None:
    push(sctx, record("old", 1, charge_time="2026-09-01T00:00:00Z"))
    assert burst(sctx, "stripe")
    assert targets["stripe"].requests == 0
    (item,) = [json.loads(x) for x in _cli(sctx, "sinks", "parked").splitlines()]
    assert "35 days" in item["reason"]


def test_a_target_down_for_a_while_backs_off_then_catches_up(
    sctx: Context, targets: dict[str, Any]
) -> None:
    push(sctx, *versions())
    for name in ("webhook", "openmeter", "lago", "stripe"):
        targets[name].down = True
    assert not burst(sctx)  # each gave up for this burst, nothing acknowledged
    status = json.loads(_cli(sctx, "sinks", "status", "--json"))
    assert all(s["lag"] + s["pending"] == 6 and s["failed"] >= 1 for s in status.values())
    assert all("503" in s["last_error"] for s in status.values())
    for name in ("webhook", "openmeter", "lago", "stripe"):
        targets[name].down = False
    assert burst(sctx)
    status = json.loads(_cli(sctx, "sinks", "status", "--json"))
    assert all(s["lag"] + s["pending"] == 0 and s["delivered"] == 6 for s in status.values())
    assert all(s["last_error"] is None for s in status.values())
    assert openmeter_sums(targets["openmeter"].events)[(WABA, NOW_MONTH)] == EXPECTED
    assert lago_sums(targets["lago"].events)[(WABA, NOW_MONTH)] == EXPECTED


def test_healthz_and_metrics_show_each_sinks_lag(sctx: Context) -> None:
    from processor.web import create_app

    push(sctx, *versions())
    client = create_app(ctx=sctx).test_client()
    health = client.get("/healthz").get_json()
    assert {n: s["lag"] for n, s in health["sinks"].items()} == {
        "webhook": 6, "openmeter": 6, "lago": 6, "stripe": 6
    }  # fmt: skip
    assert burst(sctx, "webhook")
    text = client.get("/metrics", headers=auth()).get_data(as_text=True)
    assert 'wa_billing_sink_lag{sink="webhook"} 0.0' in text
    assert 'wa_billing_sink_lag{sink="lago"} 6.0' in text
    assert 'wa_billing_sink_delivered_total{sink="webhook"} 6.0' in text


def test_without_sinks_health_is_unchanged(client: Any) -> None:
    assert "sinks" not in client.get("/healthz").get_json()


def _cli(ctx: Context, *args: str) -> str:
    s = ctx.settings
    env = {
        "REDIS_URL": s.redis_url or "", "REDIS_PREFIX": s.redis_prefix,
        "QUEUE_NAME": s.queue_name, "SINKS": ",".join(s.sinks),
        "BILLING_CONFIG_DIR": str(s.config_dir), "SINK_WEBHOOK_URL": s.sink_webhook_url or "",
        "SINK_WEBHOOK_SECRET": SECRET, "OPENMETER_URL": s.openmeter_url or "",
        "LAGO_API_URL": s.lago_api_url or "", "LAGO_API_KEY": s.lago_api_key,
        "STRIPE_API_KEY": s.stripe_api_key, "STRIPE_API_BASE": s.stripe_api_base,
    }  # fmt: skip
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout

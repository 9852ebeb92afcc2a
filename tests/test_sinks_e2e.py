"""Done when: a month of generated traffic, re-rated once, with the sink killed (kill -9) and
restarted along the way: PostgreSQL and every local target agree with /v1/usage to the cent,
and each record version is in PostgreSQL and at the webhook exactly once."""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.traffic import ACCOUNTS, MONTH_START, generate
from processor.context import Context, build_context
from processor.settings import load_settings
from processor.sinks.status import sink_status
from tests.conftest import _wipe, auth
from tests.fault_helpers import Processes, drain_here, push_all, run_cli, tails
from tests.sink_helpers import (
    config_with_accounts,
    feed_versions,
    lago_sums,
    openmeter_sums,
    sink_environ,
    stripe_sums,
)
from tests.sink_targets import Lago, OpenMeter, Stripe, Webhook, serve

pytestmark = pytest.mark.e2e
WABAS = [w for w, _ in ACCOUNTS]
START = time.time() - 33 * 86_400  # Stripe takes events up to 35 days old


def recent(bodies: list[bytes]) -> list[bytes]:
    """The benchmark's month of traffic, moved to the last five weeks."""
    shift = int(START) - MONTH_START

    def move(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: str(int(v) + shift) if k.endswith("timestamp") else move(v)
                    for k, v in node.items()}  # fmt: skip
        if isinstance(node, list):
            return [move(x) for x in node]
        return node

    return [json.dumps(move(json.loads(b)), separators=(",", ":")).encode() for b in bodies]


def dearer_rates(directory: Path) -> None:
    """Every rate 25% dearer from before the traffic: a re-rating changes most records."""
    path = directory / "rates.csv"
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and not r[0].startswith("#")]
    header, data = rows[0], rows[1:]
    latest: dict[tuple[str, ...], list[str]] = {}
    for row in data:
        key = tuple(row[1:4])
        if key not in latest or row[0] > latest[key][0]:
            latest[key] = row
    day = (datetime.fromtimestamp(START, UTC).date() - timedelta(days=1)).isoformat()
    extra = [[day, *row[1:4], str((Decimal(row[4]) * Decimal("1.25")).quantize(Decimal("0.0001")))]
             for row in latest.values() if row[0] < day]  # fmt: skip
    path.write_text("\n".join(",".join(r) for r in [header, *data, *extra]) + "\n")


@pytest.fixture
def world(environ: dict[str, str], pg_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    targets = {"webhook": Webhook(), "openmeter": OpenMeter(), "lago": Lago(), "stripe": Stripe()}
    targets["lago"].subscriptions.update(f"sub_{w}" for w in WABAS)  # type: ignore[attr-defined]
    with serve(targets["webhook"]) as w, serve(targets["openmeter"]) as o, \
            serve(targets["lago"]) as la, serve(targets["stripe"]) as st:  # fmt: skip
        config = config_with_accounts(tmp_path / "config", WABAS)
        env = sink_environ(environ, {"webhook": w, "openmeter": o, "lago": la, "stripe": st},
                           pg_url, config)  # fmt: skip
        env["STRIPE_MAX_REQUESTS_PER_SECOND"] = "150"
        env["SINK_BATCH_SIZE"] = "40"
        ctx = build_context(load_settings(env))
        procs = Processes(tmp_path)
        try:
            yield {"ctx": ctx, "env": env, "targets": targets, "procs": procs, "tmp": tmp_path}
        finally:
            procs.stop_all()
            _wipe(ctx.redis, ctx.settings)
            ctx.close()


def wait(check: Any, timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}{tails(procs.logs)}"
        time.sleep(0.1)


def caught_up(ctx: Context) -> bool:
    status = sink_status(ctx.redis, ctx.keys, ctx.settings.sinks)
    return all(s["lag"] + s["pending"] + s["replay_queued"] == 0 for s in status.values())


def test_a_rerated_month_with_the_sink_killed_along_the_way_agrees_everywhere(
    world: dict[str, Any],
) -> None:
    ctx, env, targets, procs = world["ctx"], world["env"], world["targets"], world["procs"]
    bodies = recent(generate(400, 20, seed=11).bodies)
    half = len(bodies) // 2
    push_all(ctx, bodies[:half])
    drain_here(ctx)

    first = procs.start("sink-1", ["-m", "processor.cli", "sink"], env)
    wait(lambda: len(targets["stripe"].events) >= 60, 60, "first deliveries", procs)
    first.popen.kill()  # kill -9 in the middle of batches
    first.popen.wait(5)
    push_all(ctx, bodies[half:])
    drain_here(ctx)

    second = procs.start("sink-2", ["-m", "processor.cli", "sink"], env)
    standby = procs.start("sink-2b", ["-m", "processor.cli", "sink"], env)  # competes for leases
    wait(lambda: len(targets["stripe"].events) >= 250, 90, "more deliveries", procs)
    for proc in (second, standby):
        proc.popen.kill()
        proc.popen.wait(5)

    rerate_config = config_with_accounts(world["tmp"] / "rerate-config", WABAS)
    dearer_rates(rerate_config)
    months = sorted({m for _, m in ctx.queries.months()})
    changed = 0
    for month in months:
        out = run_cli({**env, "BILLING_CONFIG_DIR": str(rerate_config)}, "rerate", "--month", month)
        changed += int(re.search(r"\((\d+) changed\)", out.stdout).group(1))  # type: ignore[union-attr]
    assert changed > 100, "the re-rating changed records"
    procs.start("sink-3", ["-m", "processor.cli", "sink"], env)
    wait(lambda: caught_up(ctx), 180, "the sinks to catch up", procs)

    _agree(ctx, targets)


def _agree(ctx: Context, targets: dict[str, Any]) -> None:
    from processor.sinks.archive import Archive
    from processor.web import create_app

    feed = feed_versions(ctx)
    corrections = [k for k, r in feed.items() if r["version"] > 1]
    assert len(corrections) > 50, "the re-rating wrote corrections"
    with psycopg.connect(ctx.settings.postgres_url or "") as conn:
        stored = conn.execute("SELECT record_id, version FROM billing_record_versions").fetchall()
        latest = conn.execute("SELECT record_id, version FROM billing_records").fetchall()
    assert sorted(f"{r}:{v}" for r, v in stored) == sorted(feed)  # each version exactly once
    assert set(targets["webhook"].events) == set(feed)
    live = {r["record_id"]: r["version"] for w, m in ctx.queries.months()
            for r in ctx.queries.records(w, m)}  # fmt: skip
    assert dict(latest) == live

    client = create_app(ctx=ctx).test_client()
    om, lago, stripe = (
        openmeter_sums(targets["openmeter"].events),
        lago_sums(targets["lago"].events),
        stripe_sums(targets["stripe"].events),
    )
    checked = 0
    for waba, month in ctx.queries.months():
        usage = client.get(f"/v1/usage?waba_id={waba}&month={month}", headers=auth()).get_json()
        total, billed = Decimal(usage["total_cost"]), Decimal(usage["total_billed_cost"])
        archived = Archive(ctx.settings.postgres_url or "").usage(waba, month, usage["currency"])
        assert (Decimal(archived["total_cost"]), Decimal(archived["total_billed_cost"]),
                archived["units"]) == (total, billed, usage["units"])  # fmt: skip
        for sums in (om, lago):
            got = sums[(waba, month)]
            assert (got["units"], got["cost"], got["billed_cost"]) == (
                usage["units"],
                total,
                billed,
            )
        assert stripe[(waba, month)]["billed_cost"] == billed
        checked += 1
    assert checked >= 3
    for name in ctx.settings.sinks:
        assert not ctx.redis.xlen(ctx.keys.sink_parked(name)), f"{name} parked versions"

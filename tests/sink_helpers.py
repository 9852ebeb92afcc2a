"""Helpers for the sink tests: settings for every sink, versions on the feed, sums per target."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from processor.context import Context
from tests.sink_targets import LAGO_KEY, SECRET, STRIPE_KEY

CONFIG = Path(__file__).resolve().parent.parent / "config"


def sink_environ(
    environ: dict[str, str], urls: dict[str, str], pg_url: str | None, config: Path
) -> dict[str, str]:
    env = {
        **environ,
        "BILLING_CONFIG_DIR": str(config),
        "SINK_WEBHOOK_URL": urls["webhook"],
        "SINK_WEBHOOK_SECRET": SECRET,
        "OPENMETER_URL": urls["openmeter"],
        "LAGO_API_URL": urls["lago"],
        "LAGO_API_KEY": LAGO_KEY,
        "STRIPE_API_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": urls["stripe"],
        "STRIPE_MAX_REQUESTS_PER_SECOND": "1000",
        "SINK_MAX_BACKOFF_SECONDS": "0.5",
        "SINK_LEASE_SECONDS": "1",
        "SINK_HTTP_TIMEOUT_SECONDS": "5",
    }
    names = ["webhook", "openmeter", "lago", "stripe"]
    if pg_url:
        env["POSTGRES_URL"] = pg_url
        names.insert(0, "postgres")
    env["SINKS"] = ",".join(names)
    return env


def config_with_accounts(directory: Path, wabas: list[str], source: Path = CONFIG) -> Path:
    """A copy of the config directory with a sinks.csv mapping each WABA."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.csv"):
        (directory / path.name).write_text(path.read_text())
    rows = "".join(f"{w},sub_{w},cus_{w}\n" for w in wabas)
    (directory / "sinks.csv").write_text(
        "waba_id,lago_external_subscription_id,stripe_customer_id\n" + rows
    )
    return directory


def record(rid: str, version: int, **fields: Any) -> dict[str, Any]:
    base = {
        "record_id": rid, "version": version, "waba_id": "310000000000001",
        "phone_number_id": "420000000000002", "user_id": "5511999990000", "country": "BR",
        "country_source": "number", "market": "Brazil", "category": "marketing",
        "kind": "message", "pricing_model": "PMP", "policy": "pmp-2025-07",
        "charge_time": "2026-11-20T10:00:00Z", "expires_at": None, "billing_month": "2026-11",
        "billable": True, "free_reason": None, "rate": "0.0625", "billed_rate": "0.0700",
        "tier": None, "currency": "USD", "cost": "0.0625", "billed_cost": "0.0700",
        "source": "meta", "meta_conversation_id": None, "wamid": f"wamid.{rid}",
        "discrepancy": None, "void": False,
    }  # fmt: skip
    base.update(fields)
    return base


def push(ctx: Context, *records: dict[str, Any]) -> None:
    for rec in records:
        ctx.redis.xadd(ctx.keys.feed, {"r": json.dumps(rec)})


def feed_versions(ctx: Context) -> dict[str, dict[str, Any]]:
    """Every version on the feed, by key."""
    out = {}
    for _, fields in ctx.redis.xrange(ctx.keys.feed):
        rec = json.loads(fields[b"r"])
        out[f"{rec['record_id']}:{rec['version']}"] = rec
    return out


Sums = dict[tuple[str, str], dict[str, Decimal]]


def openmeter_sums(events: dict[str, Any]) -> Sums:
    sums: Sums = defaultdict(lambda: defaultdict(Decimal))
    for e in events.values():
        s = sums[(e["subject"], e["data"]["billing_month"])]
        s["units"] += e["data"]["units"]
        s["cost"] += Decimal(e["data"]["cost"])
        s["billed_cost"] += Decimal(e["data"]["billed_cost"])
    return sums


def lago_sums(events: dict[str, Any]) -> Sums:
    sums: Sums = defaultdict(lambda: defaultdict(Decimal))
    for e in events.values():
        p = e["properties"]
        s = sums[(e["external_subscription_id"].removeprefix("sub_"), p["billing_month"])]
        s["units"] += Decimal(p["units"])
        s["cost"] += Decimal(p["cost"])
        s["billed_cost"] += Decimal(p["billed_cost"])
    return sums


def stripe_sums(events: dict[str, Any]) -> Sums:
    """Per customer and month of the event's timestamp (the test WABAs bill in UTC)."""
    sums: Sums = defaultdict(lambda: defaultdict(Decimal))
    for form in events.values():
        month = datetime.fromtimestamp(int(form["timestamp"]), UTC).strftime("%Y-%m")
        waba = form["payload[stripe_customer_id]"].removeprefix("cus_")
        sums[(waba, month)]["billed_cost"] += Decimal(form["payload[value]"])
    return sums

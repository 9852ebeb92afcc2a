"""A small world for ledger tests: tiny allowances and tiers, so that boundaries are cheap."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from processor.config_files import load_ratebook
from processor.core.policies import POLICIES, PolicyBook
from processor.store.cluster import is_cluster
from processor.store.keys import Keys
from processor.store.ledger import Ledger, LedgerConfig
from processor.store.ops import INTERNAL_FIELDS
from processor.store.queries import USAGE_LINE_FIELDS

DAY = 86_400
WABA, PHONE = "310000000000001", "420000000000002"
MARKETS = "effective_from,country,market\n2020-01-01,BR,Brazil\n"
RATES = "effective_from,market,currency,category,rate\n" + "".join(
    f"2020-01-01,Brazil,USD,{c},{r}\n"
    for c, r in [
        ("marketing", "0.0625"),
        ("utility", "0.0068"),
        ("authentication", "0.0068"),
        ("authentication_international", "0.0300"),
        ("service", "0.0068"),
        ("business_initiated", "0.0500"),
        ("user_initiated", "0.0300"),
        ("referral_conversion", "0"),
    ]
)
TIERS = (
    "effective_from,market,currency,category,from_volume,to_volume,rate\n"
    "2020-01-01,Brazil,USD,utility,0,2,0.0068\n"
    "2020-01-01,Brazil,USD,utility,2,4,0.0060\n"
    "2020-01-01,Brazil,USD,utility,4,,0.0050\n"
)


def small_book(limit: int) -> PolicyBook:
    """The real eras, with every free allowance cut down to ``limit`` units."""
    policies = []
    for policy in POLICIES:
        allowance = policy.allowance
        if allowance is not None:
            allowance = dataclasses.replace(allowance, limit=limit)
        policies.append(dataclasses.replace(policy, allowance=allowance))
    return PolicyBook(policies)


def write_config(directory: Path, tiers: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "markets.csv").write_text(MARKETS)
    (directory / "rates.csv").write_text(RATES)
    if tiers:
        (directory / "tiers.csv").write_text(TIERS)
    return directory


def make_ledger(client: redis.Redis, prefix: str, config_dir: Path, limit: int = 3) -> Ledger:
    config = LedgerConfig(
        dedup_ttl=8 * DAY, pair_horizon=10 * DAY, records_retention=400 * DAY, feed_maxlen=10_000
    )
    ratebook = load_ratebook(config_dir)
    return Ledger(client, keys_for(client, prefix, config_dir), ratebook, config, small_book(limit))


def keys_for(client: redis.Redis, prefix: str, config_dir: Path) -> Keys:
    """The ledger's keys for ``client``: tagged by portfolio on a cluster."""
    if not is_cluster(client):
        return Keys(prefix)
    return Keys(prefix, cluster=True, portfolios=load_ratebook(config_dir).portfolios())


def snapshot(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Everything a user can see: live records (without versions) and usage, per month."""
    records: dict[str, Any] = {}
    usage: dict[str, Counter[str]] = {}
    tagged = is_cluster(client)  # on a cluster: {prefix}:{portfolio}:rec:...
    for key in client.scan_iter(f"{prefix}:{'{*}:' if tagged else ''}rec:*"):
        for rid, body in client.hgetall(key).items():
            rec = json.loads(body)
            if not rec["void"]:
                records[rid.decode()] = _visible(rec)
    for key in client.scan_iter(f"{prefix}:{'{*}:' if tagged else ''}usage:*"):
        counts = Counter({k.decode(): int(v) for k, v in client.hgetall(key).items()})
        usage[re.sub(r"^.*?:usage:", "", key.decode())] = +counts
    return {"records": records, "usage": {k: v for k, v in usage.items() if v}}


def _visible(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "version" and k not in INTERNAL_FIELDS}


def usage_from_records(records: dict[str, Any]) -> dict[str, Counter[str]]:
    """What the usage counters must be, recomputed from the records they summarize."""
    usage: dict[str, Counter[str]] = {}
    for rec in records.values():
        fields = {**rec, "billable": "1" if rec["billable"] else "0"}
        line = "|".join("" if fields[f] is None else str(fields[f]) for f in USAGE_LINE_FIELDS)
        usage.setdefault(f"{rec['waba_id']}:{rec['billing_month']}", Counter())[line] += 1
    return usage

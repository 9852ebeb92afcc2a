"""Each sink's lag and counters, for ``wa-billing sinks status``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from processor.context import Context
from processor.store import codec
from processor.store.keys import Keys
from processor.store.sinkfeed import lag


def sink_status(
    client: redis.Redis,
    keys: Keys,
    names: tuple[str, ...],
    ledger: redis.Redis | None = None,
    ledger_keys: Keys | None = None,
) -> dict[str, Any]:
    """Per sink: its lag over the ledger's feeds (``ledger``: LEDGER_REDIS_URL's, default
    ``client``) and its counters (on ``client``)."""
    raw = codec.mapping(client.hgetall(keys.sink_stats))
    stats = {codec.text(k): int(v) for k, v in raw.items()}
    out = {}
    for name in names:
        out[name] = {
            **lag(client, keys, name, ledger, ledger_keys),
            "delivered": stats.get(f"{name}:delivered", 0),
            "failed": stats.get(f"{name}:failed", 0),
            "parked_total": stats.get(f"{name}:parked", 0),
        }
    return out


def status_of(ctx: Context) -> dict[str, Any]:
    """Every configured sink's status, from the processor's context."""
    s = ctx.settings
    return sink_status(ctx.redis, ctx.keys, s.sinks, ctx.ledger_redis, ctx.ledger_keys)


def sink_metrics(status: dict[str, Any]) -> Iterator[Metric]:
    delivered = CounterMetricFamily(
        "wa_billing_sink_delivered", "Record versions a sink delivered (parked ones excluded)",
        labels=["sink"],
    )  # fmt: skip
    failed = CounterMetricFamily(
        "wa_billing_sink_failed", "Failed delivery attempts (target down, refusing, slow)",
        labels=["sink"],
    )  # fmt: skip
    parked = CounterMetricFamily(
        "wa_billing_sink_parked", "Record versions a target rejected for good", labels=["sink"]
    )
    behind = GaugeMetricFamily(
        "wa_billing_sink_lag", "Record versions not yet delivered (new + read, unacknowledged)",
        labels=["sink"],
    )  # fmt: skip
    missed = GaugeMetricFamily(
        "wa_billing_sink_missed",
        "Versions trimmed from the feed before the sink read them (raise RECORDS_FEED_MAXLEN)",
        labels=["sink"],
    )
    for name, s in sorted(status.items()):
        missed.add_metric([name], s["missed"])
        delivered.add_metric([name], s["delivered"])
        failed.add_metric([name], s["failed"])
        parked.add_metric([name], s["parked_total"])
        behind.add_metric([name], s["lag"] + s["pending"])
    yield from (delivered, failed, parked, behind, missed)

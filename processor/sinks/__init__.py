"""Sinks: record versions flow out of the feed to PostgreSQL, a signed webhook, OpenMeter,
Lago and Stripe (``SINKS``; ``wa-billing sink``). See processor/sinks/runner.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from processor.sinks.base import Sink

if TYPE_CHECKING:
    from processor.context import Context


def build_sinks(ctx: Context, names: tuple[str, ...] | None = None) -> list[Sink]:
    """The configured sinks (``SINKS``), or the ``names`` given among them."""
    from processor.sinks.lago import LagoSink
    from processor.sinks.mapping import AccountBook
    from processor.sinks.openmeter import OpenMeterSink
    from processor.sinks.postgres import PostgresSink
    from processor.sinks.stripe import StripeSink
    from processor.sinks.webhook import WebhookSink
    from processor.store.sinkstate import SentStore

    s = ctx.settings
    accounts = AccountBook(s.config_dir)
    timeout = s.sink_http_timeout_seconds

    def store(name: str) -> SentStore:
        return SentStore(ctx.redis, ctx.keys, name, s.records_retention_seconds)

    sinks: list[Sink] = []
    for name in names if names is not None else s.sinks:
        if name == "postgres" and s.postgres_url:
            sinks.append(PostgresSink(s.postgres_url, timeout))
        elif name == "webhook" and s.sink_webhook_url:
            sinks.append(WebhookSink(s.sink_webhook_url, s.sink_webhook_secret, timeout))
        elif name == "openmeter" and s.openmeter_url:
            sinks.append(
                OpenMeterSink(store(name), accounts, s.openmeter_url, s.openmeter_api_key,
                              s.openmeter_event_type, timeout)
            )  # fmt: skip
        elif name == "lago" and s.lago_api_url:
            sinks.append(
                LagoSink(store(name), accounts, s.lago_api_url, s.lago_api_key,
                         s.lago_metric_code, timeout)
            )  # fmt: skip
        elif name == "stripe":
            sinks.append(
                StripeSink(store(name), accounts, s.stripe_api_base, s.stripe_api_key,
                           s.stripe_meter_event_name, s.stripe_max_requests_per_second, timeout)
            )  # fmt: skip
    return sinks

"""``/healthz`` and ``/metrics`` (Prometheus), for operators and load balancers."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from rq import Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from processor.context import Context
from processor.store import codec
from processor.web import reconciliation
from processor.web.auth import context
from processor.web.budget_metrics import BudgetCollector

bp = Blueprint("ops", __name__)


_ctx = context


def queue_depths(ctx: Context) -> dict[str, int]:
    queue = ctx.queue
    backlog = ctx.inbox.backlog()
    return {
        "inbox_lag": backlog["lag"],
        "inbox_pending": backlog["pending"],
        "jobs_queued": queue.count,
        "jobs_started": StartedJobRegistry(queue=queue).count,
        "jobs_failed": FailedJobRegistry(queue=queue).count,
        "workers": Worker.count(queue=queue),
    }


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    ctx = _ctx()
    try:
        ctx.redis.ping()
        depths = queue_depths(ctx)
    except redis.RedisError as exc:
        return jsonify(status="unavailable", redis=False, error=exc.__class__.__name__), 503
    return jsonify(status="ok", redis=True, **depths, **_sinks(ctx)), 200


def _sinks(ctx: Context) -> dict[str, object]:
    """Each sink's lag (only when SINKS names some: nothing changes without them)."""
    if not ctx.settings.sinks:
        return {}
    from processor.sinks.status import status_of

    return {"sinks": status_of(ctx)}


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RedisCollector(_ctx()))
    registry.register(BudgetCollector(_ctx()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _RedisCollector(Collector):
    """Counters every web process and worker keeps in Redis, read at scrape time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        up = GaugeMetricFamily("wa_billing_redis_up", "Whether Redis answered this scrape")
        try:
            raw_stats = codec.mapping(ctx.redis.hgetall(ctx.keys.stats))
            raw_latency = codec.mapping(ctx.redis.hgetall(ctx.keys.latency))
            stats = {codec.text(k): int(float(v)) for k, v in raw_stats.items()}
            latency = {codec.text(k): float(v) for k, v in raw_latency.items()}
            depths = queue_depths(ctx)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _webhook_counters(stats)
        yield from _event_counters(stats)
        depth = GaugeMetricFamily("wa_billing_queue_depth", "Queue depths", labels=["queue"])
        for name, value in depths.items():
            depth.add_metric([name], value)
        yield depth
        yield _latency(latency)
        if ctx.settings.sinks:
            from processor.sinks.status import sink_metrics, status_of

            yield from sink_metrics(status_of(ctx))
        try:
            yield from reconciliation.metric_families(ctx, stats)
        except redis.RedisError:
            return


def _webhook_counters(stats: dict[str, int]) -> Iterator[Metric]:
    received = CounterMetricFamily("wa_billing_webhooks_received", "Webhook bodies stored")
    received.add_metric([], stats.get("webhooks_received", 0))
    yield received
    ignored = CounterMetricFamily(
        "wa_billing_webhooks_ignored", "Webhooks of other fields or objects (answered 200)"
    )
    ignored.add_metric([], stats.get("webhooks_ignored", 0))
    yield ignored
    rejected = CounterMetricFamily(
        "wa_billing_webhooks_rejected", "Webhooks refused, by reason", labels=["reason"]
    )
    for name, value in sorted(stats.items()):
        if name.startswith("webhooks_rejected:"):
            rejected.add_metric([name.split(":", 1)[1]], value)
    yield rejected


def _event_counters(stats: dict[str, int]) -> Iterator[Metric]:
    events = CounterMetricFamily(
        "wa_billing_events", "Events handled by workers, by outcome", labels=["outcome"]
    )
    for outcome, name in (
        ("applied", "events_applied"),
        ("duplicate", "events_duplicate"),
        ("unchanged", "events_unchanged"),
        ("quarantined", "events_quarantined"),
    ):
        events.add_metric([outcome], stats.get(name, 0))
    yield events
    records = CounterMetricFamily("wa_billing_records_written", "Record versions written")
    records.add_metric([], stats.get("records_written", 0))
    yield records
    bodies = CounterMetricFamily("wa_billing_bodies_processed", "Webhook bodies processed")
    bodies.add_metric([], stats.get("bodies_processed", 0))
    yield bodies


def _latency(latency: dict[str, float]) -> Metric:
    from workers.metrics import LATENCY_BUCKETS

    cumulative, buckets = 0.0, []
    for bound in LATENCY_BUCKETS:
        cumulative += latency.get(str(bound), 0)
        buckets.append((str(bound), cumulative))
    cumulative += latency.get("+Inf", 0)
    buckets.append(("+Inf", cumulative))
    histogram = HistogramMetricFamily(
        "wa_billing_processing_latency_seconds", "Webhook received -> events applied"
    )
    histogram.add_metric([], buckets, sum_value=latency.get("sum", 0.0))
    return histogram

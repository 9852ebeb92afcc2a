"""``/v1/reconciliation`` and ``/v1/templates`` (bearer token), and their Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from processor.context import Context
from processor.core.reconcile import MONTH_PATTERN
from processor.graph import GraphError
from processor.store.meta_state import MetaState
from processor.web.api import WABA
from processor.web.auth import context, require_token

bp = Blueprint("reconciliation", __name__, url_prefix="/v1")
RECON_MONTH = re.compile(MONTH_PATTERN)


_ctx = context


require_token(bp)


def _required(name: str, pattern: Any) -> str:
    value = request.args.get(name)
    if not value:
        abort(400, f"query parameter '{name}' is required")
    if not pattern.fullmatch(value):
        abort(400, f"query parameter '{name}' is malformed")
    return value


@bp.get("/reconciliation")
def reconciliation() -> Any:
    """The last stored reconciliation of a WABA-month; ``refresh=1`` asks Meta again first."""
    from processor.reconciling import graph_client, run, store

    ctx = _ctx()
    waba, month = _required("waba_id", WABA), _required("month", RECON_MONTH)
    refresh = request.args.get("refresh", "0")
    if refresh not in ("0", "1"):
        abort(400, "query parameter 'refresh' must be 0 or 1")
    if refresh == "1":
        try:  # bounded well under gunicorn's 30 s worker timeout
            with graph_client(ctx, waba, attempts=2, timeout=(3.0, 10.0)) as client:
                return jsonify(run(ctx, waba, month, client=client))
        except GraphError as exc:
            reply = jsonify(
                error="Bad Gateway",
                detail="Meta could not be asked",
                message=exc.message,
                fbtrace_id=exc.fbtrace_id,
            )
            reply.status_code = 502
            return reply
    result = store(ctx).get(waba, month)
    if result is None:
        abort(404, "no reconciliation stored for this WABA and month: ask with refresh=1")
    return jsonify(result)


@bp.get("/templates")
def templates() -> Response:
    """The template registry (from Meta's template webhooks), with each category history."""
    raw = request.args.get("waba_id")
    if raw and not WABA.fullmatch(raw):
        abort(400, "query parameter 'waba_id' is malformed")
    items = MetaState(_ctx().redis, _ctx().keys).templates(raw or None)
    return jsonify(items=items, total=len(items))


# -- metrics (read by /metrics in processor/web/ops.py) -------------------------------------------


def metric_families(ctx: Context, stats: dict[str, int]) -> Iterator[Metric]:
    from processor.reconciling import store

    summaries = store(ctx).summaries()
    lines = GaugeMetricFamily(
        "wa_billing_reconciliation_lines",
        "Lines of the last reconciliation of each WABA, by status",
        labels=["waba_id", "month", "status"],
    )
    success = GaugeMetricFamily(
        "wa_billing_reconciliation_last_success_timestamp_seconds",
        "When the last reconciliation of each WABA succeeded (Unix seconds)",
        labels=["waba_id"],
    )
    drift = GaugeMetricFamily(
        "wa_billing_reconciliation_drift",
        "Our cost minus Meta's over the lines where both are known, in the WABA's currency",
        labels=["waba_id", "month", "currency"],
    )
    for waba, summary in sorted(summaries.items()):
        for status, count in summary["counts"].items():
            lines.add_metric([waba, summary["month"], status], count)
        success.add_metric([waba], summary["succeeded_at"])
        drift.add_metric([waba, summary["month"], summary["currency"]], float(summary["drift"]))
    failures = CounterMetricFamily(
        "wa_billing_reconciliation_failures", "Reconciliations where Meta could not be asked"
    )
    failures.add_metric([], stats.get("reconcile_failures", 0))
    yield from (lines, success, drift, failures)

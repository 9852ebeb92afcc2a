"""Run a reconciliation: ask Meta, read our records, compare (core), store the result.

Used by ``wa-billing reconcile``, ``GET /v1/reconciliation?refresh=1`` and the workers' periodic
job. Raises :class:`processor.graph.GraphError` when Meta could not be asked (nothing stored).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from datetime import date
from typing import IO, Any

from processor.context import Context
from processor.core.analytics import parse_pages
from processor.core.reconcile import (
    LINE_FIELDS,
    Inputs,
    counts,
    drift,
    month_bounds,
    reconcile,
)
from processor.graph import GraphClient, GraphError
from processor.store.alerts import Alerts
from processor.store.meta_state import MetaState
from processor.store.reconciliation import Reconciliations


def store(ctx: Context) -> Reconciliations:
    return Reconciliations(ctx.redis, ctx.keys, ctx.settings.records_retention_seconds)


def token_for(ctx: Context, waba_id: str) -> str:
    """The access token for ``waba_id``: its own line of META_ACCESS_TOKENS_FILE, else
    META_ACCESS_TOKEN ("" when neither is set)."""
    return dict(ctx.settings.meta_access_tokens).get(waba_id) or ctx.settings.meta_access_token


def graph_client(ctx: Context, waba_id: str, **limits: Any) -> GraphClient:
    """A client for ``waba_id``'s token; ``limits`` (``attempts``, ``timeout``) override the
    defaults, e.g. for a web request that must answer within the web server's timeout."""
    token = token_for(ctx, waba_id)
    if not token:
        raise GraphError(
            f"no token for WABA {waba_id} (META_ACCESS_TOKEN or META_ACCESS_TOKENS_FILE): "
            "Meta cannot be asked"
        )
    s = ctx.settings
    return GraphClient(s.meta_graph_url, s.meta_graph_version, token, **limits)


def run(
    ctx: Context, waba_id: str, month: str, *, client: GraphClient | None = None
) -> dict[str, Any]:
    """Reconcile one WABA-month now and store the result."""
    waba = ctx.ratebook.waba(waba_id)
    start, end = month_bounds(month, waba.timezone)
    own = client is None
    graph = client or graph_client(ctx, waba_id)
    try:
        pages = graph.pricing_analytics(waba_id, start, end)
    except GraphError:
        store(ctx).failed()
        raise
    finally:
        if own:
            graph.close()
    fetched = int(time.time())
    state = MetaState(ctx.redis, ctx.keys)
    ratebook = ctx.ratebook
    result = reconcile(
        Inputs(
            waba_id=waba_id,
            month=month,
            currency=waba.currency,
            tz=waba.timezone,
            fetched_at=fetched,
            now=fetched,
            tolerance=ctx.settings.reconcile_tolerance,
            points=parse_pages(pages).points,
            records=list(ctx.queries.records(waba_id, month)),
            display_numbers=state.display_numbers(),
            market_of=lambda country, day: ratebook.market(country, date.fromisoformat(day)),
            tier_updates=state.tier_updates(waba_id, month),
        )
    )
    store(ctx).save(result, time.time())
    record_drift_alert(ctx, result)
    return result


DRIFT = "reconciliation_drift"
ALERT_LINES = 50


def record_drift_alert(ctx: Context, result: dict[str, Any]) -> dict[str, Any] | None:
    """One alert per distinct set of settled (not provisional) lines that do not match: the
    same findings found again by the next run are not announced twice."""
    off = [x for x in result["lines"] if x["status"] != "match" and not x["provisional"]]
    if not off:
        return None
    findings = json.dumps(
        [[x[k] for k in LINE_FIELDS if k != "provisional"] for x in off], separators=(",", ":")
    )
    digest = hashlib.sha256(findings.encode()).hexdigest()[:32]
    return Alerts(ctx.redis, ctx.keys).record(
        kind=DRIFT,
        dedup=f"{result['waba_id']}|{result['month']}|{digest}",
        data={
            "month": result["month"],
            "currency": result["currency"],
            "counts": counts(result),
            "drift": format(drift(result), "f"),
            "lines": off[:ALERT_LINES],
            "more_lines": max(0, len(off) - ALERT_LINES),
        },
        waba_id=result["waba_id"],
    )


# -- output for the command line ---------------------------------------------------------------


def print_result(result: dict[str, Any], fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json.dumps(result, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=LINE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["lines"])
    else:
        _table(result, out)


def _table(result: dict[str, Any], out: IO[str]) -> None:
    totals = result["totals"]
    out.write(
        f"WABA {result['waba_id']}  month {result['month']}  currency {result['currency']}  "
        f"fetched {result['fetched_at']}\n"
        f"volume ours {totals['ours_volume']} / Meta {totals['meta_volume']}   "
        f"cost ours {_cell(totals['ours_cost'])} / Meta {_cell(totals['meta_cost'])}\n"
    )
    rows = [[_cell(line[c]) for c in LINE_FIELDS] for line in result["lines"]]
    _grid(list(LINE_FIELDS), rows, out)
    if result["tiers"]:
        out.write("\ntiers\n")
        header = ["market", "category", "meta_tier", "ours_tier", "tier_updates"]
        tier_rows = [
            [_cell(t["market"]), _cell(t["category"]), _cell(t["meta_tier"]),
             _cell(t["ours_tier"]), ", ".join(u["tier"] for u in t["tier_updates"]) or "-"]
            for t in result["tiers"]
        ]  # fmt: skip
        _grid(header, tier_rows, out)


def _grid(header: list[str], rows: list[list[str]], out: IO[str]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)

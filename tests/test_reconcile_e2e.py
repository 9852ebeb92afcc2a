"""Done-when: a month of real traffic through the webhook, the inbox and the ledger; a Graph-API
double serving Meta's figures for it with a few planted differences; ``wa-billing reconcile
--format json`` reports exactly those lines as not ``match``. Also the WABAs' day boundaries
(UTC-7, UTC+5:30), the other formats, exit 2 with Meta's error, the API and the metrics."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.context import Context, build_context
from processor.reconciling import DRIFT
from processor.settings import load_settings
from processor.store.alerts import Alerts
from tests.conftest import _wipe, auth, signed_headers
from tests.graph_double import TOKEN, GraphDouble, graph_double, point
from workers.drain import drain, use_context

PHX, IST = ZoneInfo("America/Phoenix"), ZoneInfo("Asia/Kolkata")
W_PHX, W_IST = "310000000000007", "310000000000530"
PHONES = {  # phone_number_id -> display number
    "420000000000011": "15550001111",
    "420000000000022": "15550002222",
    "420000000000033": "919000000333",
}
A, B, C = PHONES
RATES = {
    ("Brazil", "marketing"): "0.0625",
    ("Brazil", "utility"): "0.0068",
    ("Brazil", "authentication"): "0.0068",
    ("Brazil", "service"): "0.0068",
    ("India", "marketing"): "0.0107",
    ("India", "utility"): "0.0014",
    ("India", "authentication"): "0.0014",
    ("India", "service"): "0.0014",
}
MARKET = {"BR": "Brazil", "IN": "India"}
USERS = {"BR": "5511988880000", "IN": "919876500000"}


@dataclass(frozen=True)
class Sent:
    """One delivered outbound message, as the test knows it (independently of the ledger)."""

    waba: str
    phone: str
    at: int
    country: str
    category: str
    ptype: str  # Meta's pricing.type


def local(tz: ZoneInfo, day: int, h: int, m: int = 0, s: int = 0) -> int:
    return int(datetime(2025, 11, day, h, m, s, tzinfo=tz).timestamp())


def month_of_traffic() -> list[Sent]:
    """November 2025 (pmp-2025-07) for the UTC-7 WABA, with sends at both edges of its days,
    and a few days for the UTC+5:30 WABA around its midnights."""
    out = []
    for day in range(1, 31):
        out += [
            Sent(W_PHX, A, local(PHX, day, 0, 0, 10), "BR", "marketing", "regular"),
            Sent(W_PHX, A, local(PHX, day, 9), "BR", "marketing", "regular"),
            Sent(W_PHX, A, local(PHX, day, 10), "IN", "marketing", "regular"),
            Sent(W_PHX, B, local(PHX, day, 11), "IN", "utility", "regular"),
            Sent(W_PHX, B, local(PHX, day, 12, 5), "BR", "service", "free_customer_service"),
            Sent(W_PHX, B, local(PHX, day, 12, 6), "BR", "utility", "free_customer_service"),
            Sent(W_PHX, A, local(PHX, day, 23, 59, 30), "BR", "authentication", "regular"),
        ]
    for day in (1, 2, 3):
        out += [
            Sent(W_IST, C, local(IST, day, 0, 0, 5), "IN", "utility", "regular"),
            Sent(W_IST, C, local(IST, day, 23, 59, 55), "IN", "utility", "regular"),
            Sent(W_IST, C, local(IST, day, 12), "IN", "marketing", "regular"),
        ]
    return out


def bodies(traffic: list[Sent]) -> Iterator[dict[str, Any]]:
    """Meta-shaped webhooks: an inbound opening the CSW before free service sends, then one
    ``delivered`` status with pricing per message."""
    for n, sent in enumerate(traffic):
        user = f"{USERS[sent.country][:-4]}{n % 7:04d}"
        value: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": PHONES[sent.phone], "phone_number_id": sent.phone},
        }
        if sent.ptype == "free_customer_service":
            value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": user}]
            value["messages"] = [
                {"from": user, "id": f"wamid.in{n}", "timestamp": str(sent.at - 120),
                 "type": "text", "text": {"body": "hi"}}
            ]  # fmt: skip
            yield _doc(sent.waba, value)
            value = {k: v for k, v in value.items() if k not in ("contacts", "messages")}
        value["statuses"] = [
            {
                "id": f"wamid.out{n}",
                "status": "delivered",
                "timestamp": str(sent.at),
                "recipient_id": user,
                "pricing": {
                    "billable": sent.ptype == "regular",
                    "pricing_model": "PMP",
                    "type": sent.ptype,
                    "category": sent.category,
                },
            }
        ]
        yield _doc(sent.waba, value)


def _doc(waba: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": value}]}],
    }


Key = tuple[str, str, str, str, str]  # day, display number, country, CATEGORY, TYPE


def meta_figures(traffic: list[Sent], waba: str, tz: ZoneInfo) -> dict[Key, list[Any]]:
    """What Meta's analytics say for this traffic: volume and cost per key (from the test's
    own rate table, not from the ledger)."""
    figures: dict[Key, list[Any]] = defaultdict(lambda: [0, Decimal(0), 0])
    for sent in traffic:
        if sent.waba != waba:
            continue
        moment = datetime.fromtimestamp(sent.at, tz)
        start = int(datetime(moment.year, moment.month, moment.day, tzinfo=tz).timestamp())
        key = (moment.date().isoformat(), PHONES[sent.phone], sent.country,
               sent.category.upper(), sent.ptype.upper())  # fmt: skip
        cost = Decimal(RATES[(MARKET[sent.country], sent.category)])
        figures[key][0] += 1
        figures[key][1] += cost if sent.ptype == "regular" else Decimal(0)
        figures[key][2] = start
    return figures


def as_points(figures: dict[Key, list[Any]]) -> list[dict[str, Any]]:
    return [
        point(start, display, country, category, ptype, volume, str(cost),
              tier="0:750000" if ptype == "REGULAR" and category != "MARKETING" else None)
        for (_, display, country, category, ptype), (volume, cost, start) in figures.items()
    ]  # fmt: skip


# -- fixtures ------------------------------------------------------------------------------------


def write_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "markets.csv").write_text(
        "effective_from,country,market\n2020-01-01,BR,Brazil\n2020-01-01,IN,India\n"
    )
    (directory / "rates.csv").write_text(
        "effective_from,market,currency,category,rate\n"
        + "".join(f"2020-01-01,{m},USD,{c},{r}\n" for (m, c), r in RATES.items())
        + "2020-01-01,Brazil,USD,referral_conversion,0\n"
    )
    (directory / "wabas.csv").write_text(
        "waba_id,currency,timezone,portfolio_id\n"
        f"{W_PHX},USD,America/Phoenix,\n{W_IST},USD,Asia/Kolkata,\n"
    )
    return directory


@pytest.fixture
def graph() -> Iterator[GraphDouble]:
    with graph_double() as double:
        yield double


@pytest.fixture
def env(environ: dict[str, str], tmp_path: Path, graph: GraphDouble) -> dict[str, str]:
    return {
        **environ,
        "BILLING_CONFIG_DIR": str(write_config(tmp_path / "config")),
        "META_GRAPH_URL": graph.url,
        "META_ACCESS_TOKEN": TOKEN,
    }


@pytest.fixture
def world(env: dict[str, str]) -> Iterator[tuple[Context, Any]]:
    """The processor with a month of traffic applied; yields its context and a web client."""
    from processor.web import create_app

    settings = load_settings(env)
    ctx = build_context(settings)
    app = create_app(ctx=ctx)
    web = app.test_client()
    for doc in bodies(month_of_traffic()):
        raw = json.dumps(doc).encode()
        assert web.post("/webhook", data=raw, headers=signed_headers(raw)).status_code == 200
    use_context(ctx)
    drain()
    assert ctx.queries.record_count(W_PHX, "2025-11") == 210
    try:
        yield ctx, web
    finally:
        _wipe(ctx.redis, settings)
        ctx.close()


def reconcile_cli(env: dict[str, str], waba: str, fmt: str = "json") -> Any:
    args = ["reconcile", "--waba", waba, "--month", "2025-11", "--format", fmt]
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def line_key(line: dict[str, Any]) -> Key:
    return (line["day"], line["display_phone_number"], line["country"],
            line["category"].upper(), line["pricing_type"])  # fmt: skip


# -- done when -----------------------------------------------------------------------------------


def test_a_month_with_planted_differences_reports_exactly_those(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    ctx, _ = world
    figures = meta_figures(month_of_traffic(), W_PHX, PHX)
    missed = ("2025-11-05", "15550001111", "BR", "MARKETING", "REGULAR")
    figures[missed][0] += 1  # a webhook we never got
    figures[missed][1] += Decimal("0.0625")
    wrong_rate = ("2025-11-12", "15550002222", "IN", "UTILITY", "REGULAR")
    figures[wrong_rate][1] += Decimal("0.05")  # our rate card is wrong here
    small = ("2025-11-08", "15550001111", "IN", "MARKETING", "REGULAR")
    figures[small][1] += Decimal("0.004")  # inside the tolerance: not reported
    dropped = ("2025-11-25", "15550002222", "BR", "SERVICE", "FREE_CUSTOMER_SERVICE")
    del figures[dropped]  # Meta does not count what we count
    extra = ("2025-11-20", "15550001111", "DE", "MARKETING", "REGULAR")
    start = local(PHX, 20, 0)
    figures[extra] = [2, Decimal("0.2540"), start]  # Meta counts what we never saw
    points = as_points(figures)
    graph.points[W_PHX] = points
    graph.page_size = 40  # several pages

    result = reconcile_cli(env, W_PHX)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    reported = {line_key(x): x["status"] for x in doc["lines"] if x["status"] != "match"}
    assert reported == {
        missed: "volume_diff",
        wrong_rate: "cost_diff",
        dropped: "only_ours",
        extra: "only_meta",
    }
    assert len(doc["lines"]) == len(figures) + 1  # every key of both sides, once
    assert len(graph.seen) > 1  # paging was followed
    assert set(doc) == {"waba_id", "month", "currency", "fetched_at", "totals", "lines", "tiers"}
    assert (doc["waba_id"], doc["month"], doc["currency"]) == (W_PHX, "2025-11", "USD")
    assert doc["totals"]["ours_volume"] == 210
    assert doc["totals"]["meta_volume"] == 210 + 1 - 1 + 2
    (alert,) = [a for a in Alerts(ctx.redis, ctx.keys).all() if a["kind"] == DRIFT]
    assert alert["waba_id"] == W_PHX
    assert {line_key(x) for x in alert["data"]["lines"]} == set(reported)
    assert reconcile_cli(env, W_PHX).exit_code == 0  # the same findings again: no new alert
    assert len([a for a in Alerts(ctx.redis, ctx.keys).all() if a["kind"] == DRIFT]) == 1
    assert [(x["market"], x["category"]) for x in doc["tiers"]] == [
        ("Brazil", "authentication"),
        ("India", "utility"),
    ]
    assert {x["meta_tier"] for x in doc["tiers"]} == {"0:750000"}


def test_day_boundaries_of_a_waba_in_utc_minus_7_and_plus_5_30(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    """Sends at 00:00:05 and 23:59:55 local land on Meta's local day buckets: all match."""
    traffic = month_of_traffic()
    for waba, tz in ((W_PHX, PHX), (W_IST, IST)):
        graph.points[waba] = as_points(meta_figures(traffic, waba, tz))
        doc = json.loads(reconcile_cli(env, waba).stdout)
        assert {x["status"] for x in doc["lines"]} == {"match"}, waba
    days = [x["day"] for x in doc["lines"]]
    assert days == sorted(days) and days[0] == "2025-11-01" and days[-1] == "2025-11-03"
    utility = [x for x in doc["lines"] if x["category"] == "utility"]
    assert [x["ours_volume"] for x in utility] == [2, 2, 2]  # both edges of each IST day


def test_table_and_csv_show_the_same_lines(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    graph.points[W_IST] = as_points(meta_figures(month_of_traffic(), W_IST, IST))
    lines = json.loads(reconcile_cli(env, W_IST).stdout)["lines"]
    rows = list(csv.DictReader(io.StringIO(reconcile_cli(env, W_IST, "csv").stdout)))
    assert [(r["day"], r["category"], r["status"]) for r in rows] == [
        (x["day"], x["category"], x["status"]) for x in lines
    ]
    table = reconcile_cli(env, W_IST, "table").stdout
    assert table.count(" match ") == len(lines)
    assert "pricing_type" in table and "0:750000" in table


def test_meta_unreachable_exits_2_with_its_message_and_trace(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    graph.fail_raw(
        400,
        {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException",
                   "code": 100, "fbtrace_id": "Fz9yX8w7"}},
    )  # fmt: skip
    result = reconcile_cli(env, W_PHX)
    assert result.exit_code == 2
    assert "(#100) Invalid parameter" in result.stderr
    assert "Fz9yX8w7" in result.stderr
    assert TOKEN not in result.output


def test_the_api_serves_the_stored_result_and_refreshes_on_request(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    _, web = world
    query = f"waba_id={W_IST}&month=2025-11"
    assert web.get(f"/v1/reconciliation?{query}", headers=auth()).status_code == 404
    graph.points[W_IST] = as_points(meta_figures(month_of_traffic(), W_IST, IST))
    cli = json.loads(reconcile_cli(env, W_IST).stdout)
    stored = web.get(f"/v1/reconciliation?{query}", headers=auth())
    assert stored.status_code == 200 and stored.json == cli
    assert stored.headers["X-Content-Type-Options"] == "nosniff"
    asked = len(graph.seen)
    fresh = web.get(f"/v1/reconciliation?{query}&refresh=1", headers=auth())
    assert fresh.status_code == 200 and len(graph.seen) == asked + 1
    assert fresh.json["lines"] == cli["lines"]
    graph.fail(400, 190, message="Error validating access token")
    failed = web.get(f"/v1/reconciliation?{query}&refresh=1", headers=auth())
    assert failed.status_code == 502
    assert failed.json["message"] == "Error validating access token"
    assert failed.json["fbtrace_id"] == "AbCdEfGh123"
    assert web.get(f"/v1/reconciliation?{query}").status_code == 401
    assert web.get(f"/v1/reconciliation?{query}&refresh=2", headers=auth()).status_code == 400


def test_metrics_show_lines_by_status_last_success_and_drift(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    _, web = world
    figures = meta_figures(month_of_traffic(), W_IST, IST)
    key = next(k for k in figures if k[3] == "MARKETING")
    figures[key][1] += Decimal("0.5")
    graph.points[W_IST] = as_points(figures)
    reconcile_cli(env, W_IST)
    graph.fail(500, 2, times=10)
    assert reconcile_cli(env, W_IST).exit_code == 2
    text = web.get("/metrics").get_data(as_text=True)
    lines = 'wa_billing_reconciliation_lines{month="2025-11",status="%s",waba_id="%s"} %s'
    assert lines % ("cost_diff", W_IST, "1.0") in text
    assert lines % ("match", W_IST, "5.0") in text
    assert lines % ("only_meta", W_IST, "0.0") in text
    drift = 'wa_billing_reconciliation_drift{currency="USD",month="2025-11",waba_id="%s"} -0.5'
    assert drift % W_IST in text
    assert f'wa_billing_reconciliation_last_success_timestamp_seconds{{waba_id="{W_IST}"}}' in (
        text
    )
    assert "wa_billing_reconciliation_failures_total 1.0" in text


def test_a_partner_credit_line_without_cost_and_an_unknown_pricing_type(
    world: tuple[Context, Any], env: dict[str, str], graph: GraphDouble
) -> None:
    """Meta omits COST for WABAs on a partner's credit line; a pricing type Meta adds later is
    carried through, never a crash."""
    points = as_points(meta_figures(month_of_traffic(), W_IST, IST))
    for item in points:
        del item["cost"]
    points.append(point(local(IST, 2, 0), "919000000333", "IN", "BUSINESS_AGENT",
                        "FREE_AGENT_TRIAL", 4, None))  # fmt: skip
    graph.points[W_IST] = points
    result = reconcile_cli(env, W_IST)
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    statuses = {(x["category"], x["pricing_type"], x["status"]) for x in doc["lines"]}
    assert statuses == {
        ("utility", "REGULAR", "cost_unavailable"),
        ("marketing", "REGULAR", "cost_unavailable"),
        ("business_agent", "FREE_AGENT_TRIAL", "only_meta"),
    }
    assert doc["totals"]["meta_cost"] is None
    assert doc["totals"]["ours_cost"] is not None

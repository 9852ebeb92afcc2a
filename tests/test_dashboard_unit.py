"""The dashboard's web side without a browser: access (basic, bearer, session cookie, nothing),
cookie flags, CSRF, security headers, bad parameters, the vendored Chart.js, the breakdown
counters against the usage counters, and the month arithmetic."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.context import Context
from processor.core.projection import days_of, elapsed, project
from processor.store import codec
from processor.web.session import new_session, valid_session
from tests import payloads as p
from tests.conftest import TOKEN, auth
from tests.money_helpers import MONTH, T0, brazil_users, deliver, post

STATIC = Path(__file__).resolve().parent.parent / "processor" / "web" / "static"
CHART_SHA256 = "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
PAGE = f"/dashboard?waba_id={p.WABA}&month={MONTH}"


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}


def test_root_redirects_to_the_dashboard(client: Any) -> None:
    reply = client.get("/")
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/dashboard"


@pytest.mark.parametrize("headers", [basic(TOKEN), auth()], ids=["basic", "bearer"])
def test_basic_or_bearer_opens_the_dashboard(client: Any, ctx: Context, headers: Any) -> None:
    deliver(client, ctx, brazil_users(3))
    reply = client.get(PAGE, headers=headers)
    assert reply.status_code == 200
    assert b'data-metric="total_cost">0.1875<' in reply.data


@pytest.mark.parametrize(
    "headers", [{}, basic("wrong-token"), basic("")], ids=["none", "wrong", "empty"]
)
def test_without_the_token_nothing_is_shown(client: Any, ctx: Context, headers: Any) -> None:
    deliver(client, ctx, brazil_users(3))
    reply = client.get(PAGE, headers=headers)
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/dashboard/sign-in"
    assert p.WABA.encode() not in reply.data
    for name in ("usage.csv", "records.jsonl"):
        got = client.get(f"/dashboard/download/{name}?waba_id={p.WABA}&month={MONTH}",
                         headers=headers)  # fmt: skip
        assert got.status_code == 401
        assert p.WABA.encode() not in got.data


def csrf_of(reply: Any) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', reply.data)
    assert found
    return found.group(1).decode()


def test_sign_in_sets_a_secure_httponly_samesite_session(client: Any) -> None:
    form = client.get("/dashboard/sign-in")
    cookie = form.headers["Set-Cookie"]
    assert "wab_csrf=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    reply = client.post("/dashboard/sign-in", data={"csrf": csrf_of(form), "password": TOKEN})
    assert reply.status_code == 303
    session = next(c for c in reply.headers.getlist("Set-Cookie") if c.startswith("wab_session="))
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
    assert TOKEN not in session
    assert client.get(PAGE).status_code == 200  # the cookie opens the page


def test_sign_in_refuses_a_missing_csrf_token_or_another_origin(client: Any) -> None:
    form = client.get("/dashboard/sign-in")
    token = csrf_of(form)
    assert client.post("/dashboard/sign-in", data={"password": TOKEN}).status_code == 403
    wrong = client.post("/dashboard/sign-in", data={"csrf": token + "x", "password": TOKEN})
    assert wrong.status_code == 403
    other = client.post(
        "/dashboard/sign-in",
        data={"csrf": token, "password": TOKEN},
        headers={"Origin": "https://evil.example"},
    )
    assert other.status_code == 403
    assert client.get(PAGE).status_code == 302


def test_wrong_password_is_401_and_sets_no_session(client: Any) -> None:
    form = client.get("/dashboard/sign-in")
    reply = client.post("/dashboard/sign-in", data={"csrf": csrf_of(form), "password": "nope"})
    assert reply.status_code == 401
    assert not any(c.startswith("wab_session=") for c in reply.headers.getlist("Set-Cookie"))


def test_sign_out_needs_the_session_csrf_token(client: Any) -> None:
    form = client.get("/dashboard/sign-in")
    client.post("/dashboard/sign-in", data={"csrf": csrf_of(form), "password": TOKEN})
    page = client.get(PAGE)
    assert client.post("/dashboard/sign-out", data={"csrf": "forged"}).status_code == 403
    assert client.get(PAGE).status_code == 200
    out = client.post("/dashboard/sign-out", data={"csrf": csrf_of(page)})
    assert out.status_code == 303
    assert client.get(PAGE).status_code == 302


def test_session_tokens_expire_and_cannot_be_forged() -> None:
    cookie = new_session(TOKEN, now=1_000)
    assert valid_session(TOKEN, cookie, now=1_001)
    assert not valid_session(TOKEN, cookie, now=1_000 + 12 * 3600 + 1)
    assert not valid_session(TOKEN + "x", cookie, now=1_001)
    expiry, mac = cookie.split(".")
    assert not valid_session(TOKEN, f"{int(expiry) + 1}.{mac}", now=1_001)
    assert not valid_session(TOKEN, "garbage", now=1_001)


def test_pages_carry_the_security_headers(client: Any) -> None:
    for path, headers in [(PAGE, auth()), ("/dashboard/sign-in", {}),
                          ("/dashboard/static/dashboard.js", {})]:  # fmt: skip
        reply = client.get(path, headers=headers)
        csp = reply.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        reply.close()


def test_every_response_says_nosniff(client: Any) -> None:
    """Once, from processor.web.headers, whichever blueprint answered (or none)."""
    paths = ("/healthz", "/v1/openapi.json", "/v1/usage", "/nope", "/v1/reconciliation",
             "/dashboard/sign-in", "/dashboard/static/dashboard.js", "/rq/")  # fmt: skip
    for path in paths:
        reply = client.get(path)
        assert reply.headers.getlist("X-Content-Type-Options") == ["nosniff"], path
        reply.close()


def test_pages_have_no_inline_script(client: Any, ctx: Context) -> None:
    deliver(client, ctx, brazil_users(2))
    for path in (PAGE, "/dashboard/sign-in"):
        html = client.get(path, headers=auth()).data.decode()
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"<[^>]+\son[a-z]+=", html), "an inline event handler"


@pytest.mark.parametrize("query", ["waba_id=abc&month=2025-11", "waba_id=all&month=2025-13",
                                   "month=25-11"])  # fmt: skip
def test_bad_parameters_are_400(client: Any, query: str) -> None:
    assert client.get(f"/dashboard?{query}", headers=auth()).status_code == 400


def test_the_vendored_chart_js_is_the_recorded_release() -> None:
    """Chart.js 4.6.1's UMD build from the npm registry, unchanged, with its MIT licence."""
    data = (STATIC / "vendor" / "chart.js" / "chart.umd.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == CHART_SHA256
    assert data.startswith(b"/*!\n * Chart.js v4.6.1")
    assert "MIT License" in (STATIC / "vendor" / "chart.js" / "LICENSE.md").read_text()
    assert CHART_SHA256 in (STATIC / "vendor" / "chart.js" / "README.md").read_text()


def test_static_files_are_package_data() -> None:
    """Every template and static file (the RQ dashboard's too) is matched by a package-data
    glob, so an installed wheel serves the same pages."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["processor.web"]
    web = root / "processor" / "web"
    files = [f for d in ("templates", "static") for f in (web / d).rglob("*") if f.is_file()]
    assert any("rq_dashboard" in str(f) for f in files) and any("rq" in f.parts for f in files)
    for f in files:
        rel = f.relative_to(web)
        assert any(len(rel.parts) == len(Path(g).parts) and rel.match(g) for g in globs), f


# -- the breakdown counters ----------------------------------------------------------------


def breakdown_total(ctx: Context) -> dict[tuple[str, ...], int]:
    """The breakdown counters folded onto the usage lines they refine."""
    out: dict[tuple[str, ...], int] = {}
    raw = codec.mapping(ctx.redis.hgetall(ctx.keys.usage_daily(p.WABA, MONTH)))
    for field, n in raw.items():
        day, phone, _, line = field.decode().split("|", 3)
        assert day.startswith(MONTH) and phone
        out[(line,)] = out.get((line,), 0) + int(n)
    return {k: v for k, v in out.items() if v}


def usage_total(ctx: Context) -> dict[tuple[str, ...], int]:
    raw = codec.mapping(ctx.redis.hgetall(ctx.keys.usage(p.WABA, MONTH)))
    return {(k.decode(),): int(v) for k, v in raw.items() if int(v)}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # wiped per example
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["marketing", "utility", None]),
                  st.integers(0, 20 * 3600), st.booleans()),
        min_size=1, max_size=12,
    )
)  # fmt: skip
def test_breakdown_counters_always_refine_the_usage_counters(
    ctx: Context, client: Any, plan: list[tuple[int, str | None, int, bool]]
) -> None:
    """Whatever arrives (categories learned late, messages the user answered, repeats), the
    breakdown by day and number adds up to exactly the usage counters, line by line."""
    ctx.redis.delete(*(list(ctx.redis.scan_iter(f"{ctx.keys.prefix}:*")) or ["x"]))
    users = brazil_users(6)
    statuses, inbound = [], []
    for k, (who, category, dt, replied) in enumerate(plan):
        statuses.append(
            p.status(
                f"wamid.h{k}",
                "delivered",
                T0 + dt,
                user=users[who],
                category=category,
                pricing_type="regular" if category else None,
            )
        )
        if replied:
            inbound.append(p.inbound(f"wamid.r{k}", T0 + dt - 60, user=users[who]))
    post(client, p.body(p.change(statuses=statuses)))
    deliver(client, ctx, [])
    if inbound:  # arriving late, they open windows that change records already booked
        post(client, p.body(p.change(messages=inbound)))
        deliver(client, ctx, [])
    assert breakdown_total(ctx) == usage_total(ctx)


# -- month arithmetic ----------------------------------------------------------------------


def test_elapsed_and_projection() -> None:
    utc = ZoneInfo("UTC")
    mid = int(datetime(2025, 11, 16, tzinfo=UTC).timestamp())
    assert elapsed("2025-11", mid, utc) == Decimal(1) / 2
    assert project(Decimal("10"), Decimal(1) / 2) == Decimal("20.0000")
    assert elapsed("2025-12", mid, utc) == 0 and project(Decimal(5), Decimal(0)) is None
    assert elapsed("2025-10", mid, utc) == 1
    assert len(days_of("2024-02", utc)) == 29 and days_of("2025-12", utc)[-1] == "2025-12-31"


def test_rerating_rebuilds_the_breakdown_with_the_usage(
    client: Any, ctx: Context, tmp_path: Path
) -> None:
    """``wa-billing rerate`` rebuilds the breakdown beside the usage counters (new rates in
    both), and fills it in for records booked before the breakdown existed."""
    from processor.config_files import load_ratebook
    from processor.store.rerate import Rerater
    from tests.money_helpers import config_dir

    deliver(client, ctx, brazil_users(4))
    ctx.redis.delete(ctx.keys.usage_daily(p.WABA, MONTH))  # as if booked by an older version
    page = client.get(PAGE, headers=auth()).data.decode()
    assert re.search(r'data-metric="breakdown_missing_units">4 units', page)
    shipped = config_dir(tmp_path)
    rates = (shipped / "rates.csv").read_text()
    changed = rates.replace("2026-07-01,Brazil,USD,marketing,0.0625",
                            "2026-07-01,Brazil,USD,marketing,0.0600")  # fmt: skip
    assert changed != rates
    (shipped / "rates.csv").write_text(changed)
    Rerater(ctx.redis, ctx.keys, load_ratebook(shipped), 1000).rerate(MONTH)
    assert breakdown_total(ctx) == usage_total(ctx)
    assert all("|0.0600|" in line for (line,) in breakdown_total(ctx))
    assert "breakdown_missing_units" not in client.get(PAGE, headers=auth()).data.decode()


def test_breakdown_follows_units_repriced_across_a_tier_boundary(
    environ: dict[str, str], tmp_path: Path
) -> None:
    """A late, earlier message pushes booked units into the next tier: the apply script
    reprices them, and the breakdown moves with the usage counters."""
    from processor.web import create_app
    from tests.money_helpers import config_dir, context_with

    tiers = ("effective_from,market,currency,category,from_volume,to_volume,rate\n"
             "2025-07-01,Brazil,USD,utility,0,2,0.0068\n"
             "2025-07-01,Brazil,USD,utility,2,,0.0050\n")  # fmt: skip
    with context_with(environ, config_dir(tmp_path, tiers=tiers)) as ctx:
        client = create_app(ctx=ctx).test_client()
        users = brazil_users(4)
        deliver(client, ctx, users[:3], T0 + 100, "utility", tag="a")
        deliver(client, ctx, users[3:], T0, "utility", tag="late")  # earlier than all three
        lines = usage_total(ctx)
        assert lines[("utility|Brazil|1||1:2|0.0068|0.0068|USD",)] == 2
        assert lines[("utility|Brazil|1||3:|0.0050|0.0050|USD",)] == 2
        assert breakdown_total(ctx) == lines


# -- ours vs Meta per day --------------------------------------------------------------------


def recon_cells(page: str, day: str) -> dict[str, str]:
    row = re.search(rf'<tr data-recon-day="{day}".*?</tr>', page, re.S)
    assert row, day
    return dict(re.findall(r'data-metric="(recon_[a-z_]+)"[^>]*>([^<]*)<', row.group(0)))


def test_ours_vs_meta_per_day_reads_the_stored_reconciliation(client: Any, ctx: Context) -> None:
    """No stored result: a note says how to make one (and the all view asks for a WABA). A
    result stored through the reconciliation store (what GET /v1/reconciliation answers) is
    shown per day: volumes, costs (unknown where a line's cost is), statuses."""
    from processor.reconciling import store

    page = client.get(PAGE, headers=auth()).data.decode()
    assert re.search(r'data-metric="recon_none">No reconciliation is stored', page)
    assert "chart-recon" not in page and "data-recon-day" not in page
    every = client.get(f"/dashboard?waba_id=all&month={MONTH}", headers=auth()).data.decode()
    assert re.search(r'data-metric="recon_none">Choose a WABA', every)
    base = {"phone_number_id": p.PHONE, "display_phone_number": "5511900000000",
            "country": "BR", "pricing_type": "REGULAR", "provisional": False}  # fmt: skip
    lines = [
        {**base, "day": f"{MONTH}-03", "category": "marketing", "ours_volume": 2,
         "meta_volume": 3, "ours_cost": "0.1250", "meta_cost": "0.1875", "status": "volume_diff"},
        {**base, "day": f"{MONTH}-03", "category": "utility", "ours_volume": 1,
         "meta_volume": 1, "ours_cost": "0.0068", "meta_cost": "0.0068", "status": "match"},
        {**base, "day": f"{MONTH}-04", "category": "utility", "ours_volume": 1,
         "meta_volume": 1, "ours_cost": None, "meta_cost": "0.0068", "status": "cost_diff"},
    ]  # fmt: skip
    result = {"waba_id": p.WABA, "month": MONTH, "currency": "USD",
              "fetched_at": "2026-09-01T00:00:00Z", "lines": lines, "tiers": [],
              "totals": {"ours_volume": 4, "meta_volume": 5, "ours_cost": None,
                         "meta_cost": "0.2011"}}  # fmt: skip
    store(ctx).save(result, 1.0)
    api = client.get(f"/v1/reconciliation?waba_id={p.WABA}&month={MONTH}", headers=auth())
    assert api.json == result
    page = client.get(PAGE, headers=auth()).data.decode()
    assert "recon_none" not in page and 'id="chart-recon"' in page
    day3 = recon_cells(page, f"{MONTH}-03")
    assert (day3["recon_ours_volume"], day3["recon_meta_volume"]) == ("3", "4")
    assert (day3["recon_ours_cost"], day3["recon_meta_cost"]) == ("0.1318", "0.1943")
    day4 = recon_cells(page, f"{MONTH}-04")
    assert (day4["recon_ours_cost"], day4["recon_meta_cost"]) == ("unknown", "0.0068")
    row3 = re.search(rf'<tr data-recon-day="{MONTH}-03".*?</tr>', page, re.S)
    assert row3 and 'class="differs"' in row3.group(0)
    statuses = re.findall(r'data-metric="recon_day_status" data-status="([a-z_]+)">(\d+) ',
                          row3.group(0))  # fmt: skip
    assert sorted(statuses) == [("match", "1"), ("volume_diff", "1")]
    assert re.search(r'data-metric="recon_total_ours_cost">unknown<', page)
    assert re.search(r'data-metric="recon_total_meta_cost">0.2011<', page)
    chart = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page,
                      re.S)  # fmt: skip
    assert chart and '"ours_cost": [0.1318, null]' in chart.group(1).replace("\n", "")

"""The cost dashboard in a real headless Chromium, against a real server thread over a month of
generated traffic (the benchmark's generator, posted as signed webhooks and drained into real
Redis): the figures equal ``/v1/usage``, the charts drew, no console errors, and without
credentials nothing is shown. The screenshot of the main view is kept in docs/ (set
``WA_BILLING_SCREENSHOT=docs/dashboard.png`` to refresh it)."""

from __future__ import annotations

import os
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from werkzeug.serving import make_server

from bench.traffic import ACCOUNTS, generate
from processor.context import Context
from processor.web import create_app
from tests.browser import console_errors
from tests.conftest import TOKEN, signed_headers
from tests.money_helpers import config_dir, context_with
from workers.drain import drain, use_context

MONTH = "2025-11"
WABA = ACCOUNTS[0][0]
MESSAGES = 1500
MARKUP = f"waba_id,percent,fixed_per_unit\n{WABA},12,0.0005\n"
BUDGETS = f"waba_id,monthly_budget,currency,thresholds\n{WABA},20.00,USD,50;80;100\n"


@pytest.fixture
def ctx(environ: dict[str, str], tmp_path: Path) -> Iterator[Context]:
    """The shipped config plus a markup and a budget for the first WABA."""
    directory = config_dir(tmp_path, markup=MARKUP, budgets=BUDGETS)
    with context_with(environ, directory) as context:
        yield context


@pytest.fixture
def live(ctx: Context) -> Iterator[str]:
    """A server thread on a free port, with a month of traffic drained into Redis."""
    app = create_app(ctx=ctx)
    client = app.test_client()
    traffic = generate(MESSAGES, 50, seed=7)
    for body in traffic.bodies:
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
    use_context(ctx)
    while drain()["bodies"]:
        pass
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def api(base: str, path: str) -> Any:
    reply = requests.get(base + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert reply.status_code == 200
    return reply.json()


def at(browser: Any, suffix: str) -> None:
    """Wait until the browser has navigated to a URL ending with ``suffix``."""
    WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith(suffix))


def sign_in(browser: Any, base: str) -> None:
    browser.get(base + "/dashboard")
    assert browser.current_url.endswith("/dashboard/sign-in")
    browser.find_element(By.ID, "password").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    at(browser, "/dashboard")


def metric(browser: Any, name: str) -> str:
    text: str = browser.find_element(By.CSS_SELECTOR, f'[data-metric="{name}"]').text
    return text


def chart_drew(browser: Any, canvas_id: str) -> bool:
    """A Chart instance is attached to the canvas and some of its pixels are painted."""
    script = """
        const canvas = document.getElementById(arguments[0]);
        if (!canvas || !window.Chart || !window.Chart.getChart(canvas)) { return false; }
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        for (let i = 3; i < pixels.data.length; i += 4) { if (pixels.data[i] > 0) return true; }
        return false;
    """
    return bool(browser.execute_script(script, canvas_id))


def test_without_credentials_nothing_is_shown(browser: Any, live: str) -> None:
    browser.get(live + "/")
    assert browser.current_url.endswith("/dashboard/sign-in")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-metric]") == []
    assert WABA not in browser.page_source
    for path in ("/dashboard", f"/dashboard/download/records.csv?waba_id={WABA}&month={MONTH}"):
        reply = requests.get(live + path, allow_redirects=False, timeout=10)
        assert reply.status_code in (302, 401)
        assert WABA.encode() not in reply.content
    wrong = requests.get(live + "/dashboard", auth=("u", TOKEN + "x"), allow_redirects=False,
                         timeout=10)  # fmt: skip
    assert wrong.status_code == 302
    browser.find_element(By.ID, "password").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: "Wrong password" in b.page_source)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-metric]") == []


def test_dashboard_figures_equal_the_api_and_the_charts_draw(browser: Any, live: str) -> None:
    sign_in(browser, live)
    browser.get(f"{live}/dashboard?waba_id={WABA}&month={MONTH}")
    usage = api(live, f"/v1/usage?waba_id={WABA}&month={MONTH}")
    assert usage["units"] > 300
    assert metric(browser, "total_cost") == usage["total_cost"]
    assert metric(browser, "total_billed_cost") == usage["total_billed_cost"]
    assert int(metric(browser, "units")) == usage["units"]
    assert int(metric(browser, "unrated_units")) == usage["unrated_units"]
    billable = sum(x["count"] for x in usage["lines"] if x["billable"])
    assert int(metric(browser, "billable_units")) == billable
    assert int(metric(browser, "free_units")) == usage["units"] - billable
    margin = Decimal(usage["total_billed_cost"]) - Decimal(usage["total_cost"])
    assert Decimal(metric(browser, "margin")) == margin
    # per market: the table rows add up the API's lines
    by_market: dict[str, Decimal] = defaultdict(Decimal)
    for line in usage["lines"]:
        by_market[line["market"]] += Decimal(line["cost"])
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-market]")
    shown = {
        r.get_attribute("data-market"): Decimal(
            r.find_element(By.CSS_SELECTOR, '[data-metric="market_cost"]').text
        )
        for r in rows
    }
    assert shown == dict(by_market)
    # the daily and per-number breakdowns hold every unit of the month
    numbers = browser.find_elements(By.CSS_SELECTOR, '[data-metric="number_units"]')
    assert sum(int(n.text) for n in numbers) == usage["units"]
    number_costs = browser.find_elements(By.CSS_SELECTOR, '[data-metric="number_cost"]')
    assert sum(Decimal(n.text) for n in number_costs) == Decimal(usage["total_cost"])
    pending = api(live, f"/v1/pending?waba_id={WABA}")["total"]
    assert int(metric(browser, "pending_units")) == pending
    discrepancies = api(live, f"/v1/discrepancies?waba_id={WABA}&month={MONTH}")["total"]
    assert int(metric(browser, "discrepancy_units")) == discrepancies
    for canvas in ("chart-daily", "chart-markets", "chart-numbers"):
        assert chart_drew(browser, canvas), canvas
    assert console_errors(browser) == []
    keep_screenshot(browser)


def keep_screenshot(browser: Any) -> None:
    """The main view, full page; copied to ``$WA_BILLING_SCREENSHOT`` when set."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(900, int(height) + 160))
    path = Path(browser.capabilities.get("chrome", {}).get("userDataDir", "/tmp")) / "shot.png"
    assert browser.save_screenshot(str(path))
    target = os.environ.get("WA_BILLING_SCREENSHOT")
    if target:
        shutil.copyfile(path, target)


def test_all_wabas_view_adds_up_every_waba(browser: Any, live: str) -> None:
    sign_in(browser, live)
    browser.get(f"{live}/dashboard?waba_id=all&month={MONTH}")
    usages = [api(live, f"/v1/usage?waba_id={w}&month={MONTH}") for w, _ in ACCOUNTS]
    assert Decimal(metric(browser, "total_cost")) == sum(Decimal(u["total_cost"]) for u in usages)
    assert int(metric(browser, "units")) == sum(u["units"] for u in usages)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-waba]")
    assert {r.get_attribute("data-waba") for r in rows} == {w for w, _ in ACCOUNTS}
    assert chart_drew(browser, "chart-daily")
    assert console_errors(browser) == []


def test_downloads_and_sign_out(browser: Any, live: str) -> None:
    """Download links answer the month's usage and records to a signed-in session (cookie),
    and signing out (a CSRF-checked form) ends it."""
    sign_in(browser, live)
    browser.get(f"{live}/dashboard?waba_id={WABA}&month={MONTH}")
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR,
                                                                     ".downloads a")]  # fmt: skip
    assert len(links) == 4
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    usage = api(live, f"/v1/usage?waba_id={WABA}&month={MONTH}")
    jsonl = requests.get(next(x for x in links if "records.jsonl" in x), cookies=cookies,
                         timeout=30)  # fmt: skip
    assert jsonl.status_code == 200
    records = api(live, f"/v1/records?waba_id={WABA}&month={MONTH}&limit=1")["total"]
    assert len(jsonl.text.splitlines()) == records
    csv_usage = requests.get(next(x for x in links if "usage.csv" in x), cookies=cookies,
                             timeout=30)  # fmt: skip
    assert csv_usage.text.splitlines()[0].startswith("category,market,billable")
    assert sum(int(row.split(",")[4]) for row in csv_usage.text.splitlines()[1:]) == usage["units"]
    browser.find_element(By.CSS_SELECTOR, ".sign-out button").click()
    at(browser, "/dashboard/sign-in")
    browser.get(live + "/dashboard")
    assert browser.current_url.endswith("/dashboard/sign-in")

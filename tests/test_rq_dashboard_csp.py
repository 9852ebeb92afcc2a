"""The RQ dashboard (/rq) under a strict Content-Security-Policy: its pages are rendered from
our templates (processor/web/templates/rq_dashboard/), whose scripts are static files
(processor/web/static/rq/) reading what they need from data-* attributes, so no answer under
/rq allows inline script, eval or inline style, and none may be framed. In a real browser every
view renders its data with zero console errors (a CSP violation is a SEVERE console message)
and a failed job is requeued from its page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from rq import Worker
from rq.registry import FailedJobRegistry
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select

from processor.context import Context
from tests import payloads as p
from tests import test_rq_dashboard_page as page
from tests.browser import console_errors
from tests.conftest import TOKEN, auth
from tests.rq_helpers import drop_jobs
from tests.test_rq_dashboard_page import (
    PRICED,
    T0,
    job_rows,
    open_dashboard,
    post,
    queue_counts,
    wait,
)
from workers.runner import run_worker

site = page.site  # the app on a real HTTP server (fixture)
UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'", "*")


def bad_body(n: int) -> bytes:
    """A body whose one status has a timestamp that is not Unix seconds: quarantined."""
    bad = p.status(f"wamid.bad{n}", "delivered", T0 + n, user=f"55119777{n:05d}", **PRICED)
    bad["timestamp"] = "2025-07-01T20:00:00Z"
    return p.raw(p.body(p.change(statuses=[bad])))


def policy(header: str) -> dict[str, list[str]]:
    directives = (d.split() for d in header.split(";") if d.strip())
    return {d[0]: d[1:] for d in directives}


def assert_strict(header: str | None, where: str) -> None:
    assert header, f"{where}: no Content-Security-Policy"
    csp = policy(header)
    assert csp.get("frame-ancestors") == ["'none'"], (where, header)
    for kind in ("script-src", "style-src"):
        sources = csp.get(kind, csp.get("default-src"))
        assert sources is not None, (where, kind, header)
        assert not set(sources) & set(UNSAFE), (where, kind, header)
        assert all(s in ("'self'", "'none'") for s in sources), (where, kind, header)


@pytest.fixture
def failed(client: Any, ctx: Context) -> Iterator[str]:
    """One failed job (a quarantined body) in the queue; its id."""
    ctx.inbox.push(bad_body(1))
    run_worker(ctx, burst=True)
    [job_id] = FailedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    yield job_id
    drop_jobs(ctx)


def test_every_rq_answer_forbids_inline_script_eval_and_framing(
    client: Any, ctx: Context, failed: str
) -> None:
    q = ctx.queue.name
    pages = [
        "/rq/",
        "/rq/0/view/queues",
        "/rq/0/view/workers",
        "/rq/0/view/jobs",
        f"/rq/0/view/jobs/{q}/failed/8/asc/1",
        f"/rq/0/view/jobs/{q}/queued/8/dsc/1",
        f"/rq/0/view/job/{failed}",
    ]
    others = [
        "/rq/0/data/queues.json",
        "/rq/0/data/workers.json",
        f"/rq/0/data/jobs/{q}/failed/8/asc/1.json",
        f"/rq/0/data/job/{failed}.json",
        "/rq/static/css/main.css",
        "/rq/favicon.ico",
        "/rq/nope",
    ]
    for path in pages + others:
        for headers in (auth(), {}):  # the 401 too
            reply = client.get(path, headers=headers)
            assert_strict(reply.headers.get("Content-Security-Policy"), path)
            assert reply.headers["X-Content-Type-Options"] == "nosniff", path
            assert reply.headers["X-Frame-Options"] == "DENY", path
            reply.close()
    for path in pages:
        reply = client.get(path, headers=auth(), follow_redirects=True)  # /rq/0/view/queues: /rq/
        assert reply.status_code == 200, path
        html = reply.data.decode()
        tags = re.findall(r"<script[^>]*>", html)
        assert len(tags) == 2, (path, tags)  # common.js and the view's own
        assert all(re.search(r'src="/static/rq/[a-z]+\.js"', tag) for tag in tags), tags
        assert not re.search(r"<[^>]+\s(on[a-z]+|style)=", html), f"{path}: inline handler/style"
        assert TOKEN not in html
    requeue = client.post(
        f"/rq/job/{failed}/requeue", headers={**auth(), "Origin": "http://localhost"}
    )
    assert requeue.status_code == 200
    assert_strict(requeue.headers.get("Content-Security-Policy"), "POST requeue")


def test_the_view_scripts_are_served_as_javascript(client: Any) -> None:
    for name in ("common", "queues", "workers", "jobs", "job"):
        reply = client.get(f"/static/rq/{name}.js")
        assert reply.status_code == 200 and reply.mimetype == "text/javascript", name
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert "eval(" not in reply.text and "innerHTML" not in reply.text, name
        reply.close()


def rows(browser: Any, selector: str) -> list[list[str]]:
    found: list[list[str]] = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(r =>"
        " Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()));",
        selector,
    )
    return found


def field(browser: Any, name: str) -> str:
    text: str = browser.find_element(By.CSS_SELECTOR, f"#job-data [data-field={name}]").text
    return text


def test_every_view_renders_its_data_with_no_console_error_and_requeue_works(
    browser: Any, site: tuple[str, Context]
) -> None:
    """Queues, workers, a failed registry's jobs (two pages of one), polling that shows a new
    failure without a reload, a failed job's page and its Requeue button: no console error
    (no CSP violation) on any of them."""
    base, ctx = site
    for n in (1, 2):
        post(base, bad_body(n))
    run_worker(ctx, burst=True)
    worker = Worker([ctx.queue], connection=ctx.redis, name="host-a-101")
    worker.register_birth()
    try:
        open_dashboard(browser, base)
        counts = queue_counts(browser, base, ctx.queue.name)
        assert counts["failed"] == 2 and counts["finished"] >= 1
        assert console_errors(browser) == []

        browser.get(f"{base}/rq/0/view/workers")
        shown = wait(
            browser, "the worker's row", lambda b: rows(b, "#workers tr[data-role=worker]")
        )
        assert ["host-a-101", "idle", ctx.queue.name] in shown
        assert console_errors(browser) == []

        first = job_rows(browser, base, ctx.queue.name, "failed")
        assert len(first) == 2 and all("timestamp is not Unix seconds" in r["error"] for r in first)
        browser.get(f"{base}/rq/0/view/jobs/{ctx.queue.name}/failed/1/asc/1")
        wait(browser, "one job a page", lambda b: rows(b, "#jobs tr[data-role=job]"))
        pages = browser.find_elements(By.CSS_SELECTOR, "#page-selection li.page-item")
        assert [li.text for li in pages] == ["«", "‹", "1", "2", "›", "»"]
        active = browser.find_element(By.CSS_SELECTOR, "#page-selection li.active")
        assert active.text == "1"
        browser.find_element(By.LINK_TEXT, "2").click()
        wait(browser, "page 2", lambda b: b.current_url.endswith("/failed/1/asc/2"))
        second = wait(browser, "page 2's job", lambda b: b.execute_script(ID_JS))
        assert second == first[1]["id"]

        browser.get(f"{base}/rq/0/view/jobs/{ctx.queue.name}/failed/20/asc/1")
        wait(browser, "two failed", lambda b: len(rows(b, "#jobs tr[data-role=job]")) == 2)
        post(base, bad_body(3))
        run_worker(ctx, burst=True)  # shown by the next poll, without a reload
        wait(browser, "the poll", lambda b: len(rows(b, "#jobs tr[data-role=job]")) == 3)
        assert console_errors(browser) == []

        job_id = first[0]["id"]
        browser.get(f"{base}/rq/0/view/job/{job_id}")
        wait(browser, "the job's fields", lambda b: field(b, "status") == "failed")
        assert "timestamp is not Unix seconds" in field(browser, "exc_info")
        assert field(browser, "origin") == ctx.queue.name
        assert field(browser, "created_at").endswith("UTC")
        button = browser.find_element(By.ID, "requeue-job-btn")
        assert button.is_displayed()
        button.click()
        wait(browser, "the requeue", lambda b: job_id not in failed_ids(ctx))
        wait(browser, "the button hidden", lambda b: not button.is_displayed())
        assert len(failed_ids(ctx)) == 2
        assert console_errors(browser) == []

        browser.get(f"{base}/rq/0/view/jobs/{ctx.queue.name}/failed/20/asc/1")
        wait(browser, "two failed", lambda b: len(rows(b, "#jobs tr[data-role=job]")) == 2)
        browser.find_element(By.ID, "requeue-all-btn").click()
        wait(browser, "the confirmation", expected_conditions.alert_is_present()).accept()
        wait(browser, "every failed job requeued", lambda b: not failed_ids(ctx))
        Select(browser.find_element(By.ID, "select-registry")).select_by_visible_text("queued")
        wait(browser, "the queued view", lambda b: b.current_url.endswith("/queued/20/asc/1"))
        queued = wait(browser, "the queued jobs", lambda b: rows(b, "#jobs tr[data-role=job]"))
        assert len(queued) == ctx.queue.count == 3
        assert console_errors(browser) == []
    finally:
        worker.register_death()


ID_JS = "const r = document.querySelector('#jobs tr[data-role=job]'); return r && r.dataset.jobId;"


def failed_ids(ctx: Context) -> list[str]:
    ids: list[str] = FailedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    return ids

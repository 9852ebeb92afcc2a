"""The RQ dashboard in a real browser (headless Chromium) over a real HTTP server and Redis:
after a burst with a poison body, /rq shows the drain jobs with their counts and the failed
jobs of the quarantine; the dashboard's own Requeue button replays a body.

``WA_BILLING_SCREENSHOTS=docs`` also saves the views shown in the README (use an empty Redis
database, e.g. ``TEST_REDIS_URL=redis://127.0.0.1:6379/14``, so that only this queue shows).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from processor.context import Context, build_context
from processor.settings import load_settings
from processor.store.keys import GROUP
from tests import payloads as p
from tests.browser import console_errors
from tests.conftest import TOKEN, _wipe, signed_headers
from tests.fault_helpers import free_port
from tests.rq_helpers import drop_jobs
from workers import failures
from workers.runner import run_worker

T0 = 1_751_400_000  # 2025-07-01T20:00Z
MONTH = "2025-07"
PRICED = {"category": "marketing", "pricing_type": "regular"}
SHOTS = os.environ.get("WA_BILLING_SCREENSHOTS")


@pytest.fixture
def site(environ: dict[str, str]) -> Iterator[tuple[str, Context]]:
    """The app on a real HTTP server; the worker settings of a small deployment."""
    env = {**environ, "MAX_DELIVERIES": "2", "DRAIN_BATCH_BODIES": "5"}
    if SHOTS:
        env["QUEUE_NAME"] = "wa-billing"  # as deployed (in an empty Redis database)
    ctx = build_context(load_settings(env))
    from processor.web import create_app

    server = make_server("127.0.0.1", free_port(), create_app(ctx=ctx), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", ctx
    finally:
        server.shutdown()
        thread.join(timeout=10)
        drop_jobs(ctx)
        _wipe(ctx.redis, ctx.settings)
        ctx.close()


def post(base: str, body: bytes) -> None:
    reply = requests.post(f"{base}/webhook", data=body, headers=signed_headers(body), timeout=5)
    assert reply.status_code == 200, reply.text


def burst(n: int, statuses: int) -> list[bytes]:
    """``n`` bodies of ``statuses`` priced deliveries each (one user per status)."""
    return [
        p.raw(
            p.body(
                p.change(
                    statuses=[
                        p.status(
                            f"wamid.b{b}.{i}",
                            "delivered",
                            T0 + b * 60 + i,
                            user=f"55119{b:03d}{i:05d}",
                            **PRICED,
                        )
                        for i in range(statuses)
                    ]
                )
            )
        )
        for b in range(n)
    ]


def malformed_timestamp() -> bytes:
    bad = p.status("wamid.badtime", "delivered", T0, user="5511977776666", **PRICED)
    bad["timestamp"] = "2025-07-01T20:00:00Z"  # Meta sends Unix seconds
    return p.raw(p.body(p.change(statuses=[bad])))


def records(ctx: Context) -> dict[str, int]:
    counts: dict[str, int] = {}
    for raw in ctx.redis.hvals(ctx.keys.records(p.WABA, MONTH)):
        wamid = json.loads(raw)["wamid"]
        counts[wamid] = counts.get(wamid, 0) + 1
    return counts


def open_dashboard(browser: Any, base: str) -> None:
    """Every request of the page (its scripts' too) carries the token, as basic auth would."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    )
    browser.get(f"{base}/rq/")


def wait(browser: Any, what: str, until: Callable[[Any], Any]) -> Any:
    return WebDriverWait(browser, 15, poll_frequency=0.1).until(until, message=what)


def queue_counts(browser: Any, base: str, queue: str) -> dict[str, int]:
    """The counts the queues view shows for ``queue``."""
    browser.get(f"{base}/rq/")
    cells = wait(browser, "the queue's row", lambda b: b.execute_script(QUEUE_JS, queue))
    names = ("queued", "deferred", "scheduled", "started", "finished", "failed", "canceled")
    return dict(zip(names, map(int, cells[1:]), strict=True))


QUEUE_JS = """
for (const row of document.querySelectorAll('#queues tr[data-role=queue]')) {
  const cells = Array.from(row.querySelectorAll('td')).map(td => td.textContent.trim());
  if (cells[0] === arguments[0]) return cells;
}
return null;
"""


def job_rows(browser: Any, base: str, queue: str, registry: str) -> list[dict[str, str]]:
    """The rows of a registry's jobs view: job id, description, error."""
    browser.get(f"{base}/rq/0/view/jobs/{queue}/{registry}/20/asc/1")
    wait(
        browser,
        f"the {registry} jobs",
        lambda b: (
            b.find_elements(By.CSS_SELECTOR, "#jobs tr[data-role=job]")
            or "No jobs." in b.find_element(By.ID, "jobs").text
        ),
    )
    # read in one go: the page re-renders its rows every poll interval
    rows: list[dict[str, str]] = browser.execute_script(ROWS_JS)
    return rows


ROWS_JS = """
return Array.from(document.querySelectorAll('#jobs tr[data-role=job]')).map(row => {
  const error = row.querySelector('pre.exc_info');
  return {id: row.dataset.jobId, description: row.querySelector('.description').textContent,
          error: error ? error.textContent : ''};
});
"""


def click_requeue(browser: Any, job_id: str) -> None:
    """The dashboard's own Requeue button (it POSTs to /rq/job/<id>/requeue)."""
    for _ in range(5):  # the row may be re-rendered under the pointer
        try:
            row = browser.find_element(By.CSS_SELECTOR, f"#jobs tr[data-job-id='{job_id}']")
            row.find_element(By.CSS_SELECTOR, "[data-role=requeue-job-btn]").click()
            break
        except StaleElementReferenceException:
            continue
    wait(browser, "the requeued job to leave the list", lambda b: not _row_shown(b, job_id))


def _row_shown(browser: Any, job_id: str) -> bool:
    shown: bool = browser.execute_script(
        "const r = document.querySelector(`#jobs tr[data-job-id='${arguments[0]}']`);"
        "return !!r && r.offsetParent !== null;",
        job_id,
    )
    return shown


def page_errors(browser: Any) -> list[str]:
    """Console errors: a script, style or fetch the page's CSP refused would be one."""
    return console_errors(browser)


def screenshot(browser: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        size = browser.get_window_size()
        browser.set_window_size(size["width"], 560)
        time.sleep(0.3)
        browser.save_screenshot(str(Path(SHOTS) / name))
        browser.set_window_size(size["width"], size["height"])


def test_dashboard_shows_the_drains_and_the_poison_and_requeue_puts_it_back(
    browser: Any, site: tuple[str, Context]
) -> None:
    """A burst of 18 bodies (900 statuses) and one body whose status has a malformed
    timestamp: the drain jobs say what they did, the poison is the one failed job. A malformed
    field of Meta's body cannot be fixed by replaying it: requeued, it fails again and is back
    among the failed jobs with its reason, and nothing is billed twice."""
    base, ctx = site
    for body in burst(18, 50):
        post(base, body)
    post(base, malformed_timestamp())
    run_worker(ctx, burst=True)
    drains = FinishedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    assert records(ctx) and all(v == 1 for v in records(ctx).values())
    assert len(records(ctx)) == 900

    open_dashboard(browser, base)
    counts = queue_counts(browser, base, ctx.queue.name)
    assert counts["finished"] == len(drains) > 0
    assert counts["failed"] == ctx.quarantine.list()["total"] == 1
    assert counts["queued"] == counts["started"] == 0
    screenshot(browser, "rq-dashboard-queues.png")

    finished = job_rows(browser, base, ctx.queue.name, "finished")
    assert len(finished) == len(drains)
    shown = {row["id"]: row["description"] for row in finished}
    bodies = events = 0
    for job_id in drains:
        meta = Job.fetch(job_id, connection=ctx.redis).meta
        assert shown[job_id].startswith(f"drained {meta['bodies']} bod"), shown[job_id]
        assert f"{meta['quarantined']} quarantined)" in shown[job_id]
        bodies, events = bodies + meta["bodies"], events + meta["events"]
    assert (bodies, events) == (19, 900)
    screenshot(browser, "rq-dashboard-finished.png")

    [failed] = job_rows(browser, base, ctx.queue.name, "failed")
    [item] = ctx.quarantine.list()["items"]
    assert failed["id"] == failures.job_id(item["id"])
    assert "timestamp is not Unix seconds" in failed["description"]
    assert "timestamp is not Unix seconds" in failed["error"]
    assert f"body {item['body_id']}" in failed["error"]
    assert "5511977776666" not in failed["description"] + failed["error"]
    screenshot(browser, "rq-dashboard-failed.png")

    click_requeue(browser, failed["id"])
    run_worker(ctx, burst=True)
    [again] = job_rows(browser, base, ctx.queue.name, "failed")
    assert again["id"] != failed["id"] and "timestamp is not Unix seconds" in again["error"]
    assert queue_counts(browser, base, ctx.queue.name)["failed"] == 1
    assert ctx.quarantine.list()["total"] == 1
    assert len(records(ctx)) == 900 and "wamid.badtime" not in records(ctx)
    assert page_errors(browser) == []


def test_requeue_in_the_dashboard_bills_a_body_whose_failure_is_fixed_once(
    browser: Any, site: tuple[str, Context]
) -> None:
    """Workers crashed twice on a body (MAX_DELIVERIES=2: out of memory, say), so it was
    quarantined and the inbox went on. Once the cause is fixed, the operator requeues its
    failed job in the dashboard: the body is replayed and billed, once."""
    base, ctx = site
    [held] = burst(1, 3)
    ctx.inbox.ensure_group()  # (a worker has started once)
    post(base, held)
    ctx.redis.xreadgroup(GROUP, "host-a-101", {ctx.keys.inbox: ">"}, count=1)  # crash 1
    [body_id] = [e.id for e in ctx.inbox.entries()]
    ctx.redis.xclaim(ctx.keys.inbox, GROUP, "host-b-202", 0, [body_id])  # crash 2
    for body in burst(4, 5)[1:]:
        post(base, body)
    time.sleep(ctx.settings.claim_idle_seconds + 0.1)
    run_worker(ctx, burst=True)
    assert "wamid.b0.0" not in records(ctx) and len(records(ctx)) == 15

    open_dashboard(browser, base)
    assert queue_counts(browser, base, ctx.queue.name)["failed"] == 1
    [failed] = job_rows(browser, base, ctx.queue.name, "failed")
    assert "processing failed 2 times (worker crash or bug)" in failed["error"]
    assert f"body {body_id}" in failed["error"]

    click_requeue(browser, failed["id"])
    assert FailedJobRegistry(queue=ctx.queue).count == 0
    run_worker(ctx, burst=True)
    assert records(ctx) == {
        **{f"wamid.b{b}.{i}": 1 for b in range(1, 4) for i in range(5)},
        **{f"wamid.b0.{i}": 1 for i in range(3)},
    }
    counts = queue_counts(browser, base, ctx.queue.name)
    assert counts["failed"] == ctx.quarantine.list()["total"] == 0
    finished = job_rows(browser, base, ctx.queue.name, "finished")
    replayed = next(r for r in finished if r["id"] == failed["id"])
    assert replayed["description"].startswith(f"replayed body {body_id}")
    assert page_errors(browser) == []

"""Paths no other test ran, run as a user would, on real processes:

- ``wa-billing up`` with no ``REDIS_URL`` (the README's first command): the embedded Redis
  starts, a signed body posted to the webhook URL is billed, ``wa-billing report`` in another
  process finds the same server, and SIGINT or SIGTERM stops everything cleanly;
- the embedded Redis on its own: started once, found by a second process, started again when
  the recorded one is gone;
- the ``MAX_DELIVERIES`` poison path of the drain: a body that kills every worker that takes
  it is quarantined after that many deliveries, the bodies behind it are billed, and it is
  billed once after a fix and ``wa-billing quarantine replay``;
- ``wa-billing rerate`` after a corrected rate file.

Money comes from a test-owned rate book (``tests/ledger_helpers.py``: Brazil marketing 0.0625),
so the expected amounts do not depend on the shipped example rates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from processor.context import Context
from processor.settings import load_settings
from processor.store.connection import Embedded
from tests import fault_helpers as fh
from tests import payloads as p
from tests.conftest import SECRET, TOKEN, VERIFY, signed_headers
from tests.ledger_helpers import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

# The README's example body: one delivered marketing message (PMP) to a Brazilian user.
README_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"310000000000001","changes":[{"field":'
    b'"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":'
    b'"5511900000000","phone_number_id":"420000000000002"},"statuses":[{"id":"wamid.1","status":'
    b'"delivered","timestamp":"1787385600","recipient_id":"5511988887777","pricing":{"billable":'
    b'true,"pricing_model":"PMP","type":"regular","category":"marketing"}}]}}]}]}'
)


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The conftest environment with a test-owned rate book."""
    return {**environ, "BILLING_CONFIG_DIR": str(write_config(tmp_path / "config"))}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[fh.Processes]:
    running = fh.Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def user_env(tmp_path: Path, *, shipped_config: bool = False) -> dict[str, str]:
    """A user's shell: no REDIS_URL anywhere, the README's secrets, a data dir of its own, and
    the test's own rate book (or, like a new user, the shipped config/)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "TEST_REDIS_URL", "BILLING_CONFIG_DIR")
    }
    if not shipped_config:
        env["BILLING_CONFIG_DIR"] = str(write_config(tmp_path / "config"))
    return {
        **env,
        "META_APP_SECRET": SECRET,
        "META_VERIFY_TOKEN": VERIFY,
        "API_TOKEN": TOKEN,
        "WA_BILLING_DATA_DIR": str(tmp_path / "data"),
        "WEB_CONCURRENCY": "1",
        "PYTHONPATH": str(fh.PROJECT),
    }


def wa_billing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=env,
        cwd=fh.PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- wa-billing up ------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_wa_billing_up_without_redis_url_bills_a_signed_body_and_stops_cleanly(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """The README's first command and its example, as a new user runs them: the shipped
    config prices the README's body at Meta's published rate."""
    assert README_BODY.decode() in (fh.PROJECT / "README.md").read_text()
    env = user_env(tmp_path, shipped_config=True)
    port = fh.free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "up", "--port", str(port), "--workers", "1"],
            env=env,
            cwd=fh.PROJECT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        fh.wait_for(lambda: healthy(base), 90, "wa-billing up to answer", logs=[log])
        banner = log.read_text()
        assert f"webhook URL   {base}/webhook" in banner and "(embedded)" in banner, banner
        url_file = tmp_path / "data" / "redis.url"
        embedded_url = url_file.read_text().strip()
        assert embedded_url.startswith("redis://")

        reply = requests.post(
            f"{base}/webhook", data=README_BODY, headers=signed_headers(README_BODY), timeout=5
        )
        assert (reply.status_code, reply.text) == (200, "ok")

        def billed() -> Any:
            got = requests.get(
                f"{base}/v1/usage?waba_id={p.WABA}&month=2026-08",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            ).json()
            return got if got["units"] == 1 else None

        usage = fh.wait_for(billed, 60, "the body to be billed", logs=[log])
        assert usage["total_cost"] == "0.0625"  # Brazil marketing, Meta's USD card of 2026-07-01

        report = wa_billing(env, "report", "--waba", p.WABA, "--month", "2026-08")
        assert report.returncode == 0, report.stderr
        assert "marketing" in report.stdout and "total cost 0.0625 USD" in report.stdout
        as_json = wa_billing(env, "report", "--waba", p.WABA, "--month", "2026-08", "--format",
                             "json")  # fmt: skip
        assert json.loads(as_json.stdout)["total_cost"] == "0.0625"

        up.send_signal(stop)
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
    assert not url_file.exists()  # the embedded Redis was stopped...
    gone = redis.Redis.from_url(embedded_url, socket_connect_timeout=1)
    with gone, pytest.raises(redis.ConnectionError):
        gone.ping()
    with pytest.raises(requests.ConnectionError):  # ...and so was the web endpoint
        requests.get(f"{base}/healthz", timeout=2)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=3).status_code == 200
    except requests.RequestException:  # not listening yet, or still booting
        return False


# -- the embedded Redis ------------------------------------------------------------------------


def test_embedded_redis_is_started_once_found_by_others_and_restarted_when_gone(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    owner = Embedded(data)
    url = owner.url()  # started: no URL recorded yet
    try:
        assert (data / "redis.url").read_text().strip() == url
        assert (data / "redis").is_dir()  # its AOF directory
        with redis.Redis.from_url(url) as client:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            client.set("kept", "1")
            other = Embedded(data)
            assert other.url() == url and other.server is None  # found, not started again
            other.stop()  # a process that did not start it does not stop it
            assert client.ping()
    finally:
        owner.stop()
    assert not (data / "redis.url").exists()
    (data / "redis.url").write_text(url + "\n")  # a stale file: the server it names is gone
    again = Embedded(data)
    try:
        assert again.url().startswith("redis://") and again.server is not None
        with redis.Redis.from_url(again.url()) as client:
            assert client.get("kept") == b"1"  # AOF: the data came back
    finally:
        again.stop()


def test_settings_without_redis_url_use_the_embedded_redis(tmp_path: Path) -> None:
    """The context a CLI command builds with REDIS_URL unset runs on the embedded server."""
    from processor.context import build_context

    env = {k: v for k, v in user_env(tmp_path).items() if k != "REDIS_URL"}
    ctx = build_context(load_settings({**env, "REDIS_URL": ""}))
    try:
        assert ctx.embedded is not None and ctx.redis.ping()
        assert ctx.redis_url == (tmp_path / "data" / "redis.url").read_text().strip()
    finally:
        ctx.close()
        if ctx.embedded is not None:
            ctx.embedded.stop()


# -- MAX_DELIVERIES: a body that kills every worker ------------------------------------------


CRASHING_WORKER = (
    "import os, sys; from workers import drain; real = drain.parse_body;"
    " drain.parse_body = lambda body, *a: os._exit(3) if b'wamid.poison' in body"
    " else real(body, *a);"
    " from processor.cli import main; sys.argv = ['wa-billing', 'worker']; main()"
)


def template(wamid: str, user: str) -> bytes:
    priced = {"category": "marketing", "pricing_type": "regular", "user": user}
    return p.raw(p.body(p.change(statuses=[p.status(wamid, "delivered", fh.T_JULY, **priced)])))


def test_a_body_that_kills_every_worker_is_quarantined_after_max_deliveries(
    environ: dict[str, str], ctx: Context, procs: fh.Processes
) -> None:
    env = {
        **environ,
        "MAX_DELIVERIES": "3",
        "DRAIN_BATCH_BODIES": "1",  # the poison alone in its batch
        "JANITOR_INTERVAL_SECONDS": "0.2",
    }
    ctx.inbox.ensure_group()
    poison_id = fh.store(ctx, template("wamid.poison", "5511900000001"))
    fh.store(ctx, template("wamid.after", "5511900000002"))
    # Every worker that takes the poison dies (a supervisor such as `wa-billing up` starts
    # another one); the third delivery is the last.
    for attempt in range(3):
        worker = procs.start(f"crashing-{attempt}", ["-c", CRASHING_WORKER], env)
        assert worker.popen.wait(timeout=60) == 3, fh.tails(procs.logs)
    survivor = procs.start("crashing-3", ["-c", CRASHING_WORKER], env)
    fh.wait_for(lambda: ctx.inbox.backlog() == {"lag": 0, "pending": 0}, 60,
                "the inbox to move past the poison", logs=procs.logs)  # fmt: skip
    assert survivor.alive()  # the fourth worker never ran the poison: it was given up
    [item] = ctx.quarantine.list()["items"]
    assert (item["body_id"], item["reason"]) == (
        poison_id,
        "body: processing failed 3 times (worker crash or bug)",
    )
    assert billed(ctx) == {"wamid.after"}

    procs.stop(survivor)  # the fix is deployed: a worker without the bug
    procs.worker("fixed", env)
    fh.run_cli(env, "quarantine", "replay", "--all")
    fh.wait_for(lambda: billed(ctx) == {"wamid.after", "wamid.poison"}, 60,
                "the replayed body to be billed", logs=procs.logs)  # fmt: skip
    usage = ctx.queries.usage(p.WABA, "2025-07", "USD")
    assert (usage["units"], usage["total_cost"]) == (2, "0.1250")  # 2 x 0.0625, once each


def billed(ctx: Context) -> set[str]:
    return {r["wamid"] for r in ctx.queries.records(p.WABA, "2025-07") if not r["void"]}


# -- wa-billing rerate ---------------------------------------------------------------------------


def test_wa_billing_rerate_applies_a_corrected_rate_file(
    environ: dict[str, str], ctx: Context, tmp_path: Path
) -> None:
    """Three charged marketing messages and one free service reply (in the window the user's
    message opened); then both list prices change. Re-rating reprices the charged ones, keeps
    the free one free (its list rate is updated, its money stays 0) and is idempotent."""
    for n, user in enumerate(["5511900000001", "5511900000002", "5511900000003"]):
        fh.store(ctx, template(f"wamid.r{n}", user))
    writes = p.inbound("wamid.in", fh.T_JULY - 60, "5511900000009")
    reply = p.status("wamid.reply", "delivered", fh.T_JULY, user="5511900000009",
                     category="service", pricing_type="free_customer_service")  # fmt: skip
    fh.store(ctx, p.raw(p.body(p.change(messages=[writes], statuses=[reply]))))
    fh.drain_here(ctx)
    assert ctx.queries.usage(p.WABA, "2025-07", "USD")["total_cost"] == "0.1875"  # 3 x 0.0625
    rates = Path(environ["BILLING_CONFIG_DIR"]) / "rates.csv"
    corrected = rates.read_text().replace("marketing,0.0625", "marketing,0.0600")
    rates.write_text(corrected.replace("service,0.0068", "service,0.0070"))

    out = fh.run_cli(environ, "rerate", "--month", "2025-07").stdout
    assert "re-rated 4 records of 2025-07 (4 changed)" in out
    assert f"WABA {p.WABA}: total cost 0.1875 -> 0.1800" in out
    usage = ctx.queries.usage(p.WABA, "2025-07", "USD")
    lines = sorted((x["category"], x["billable"], x["count"], x["cost"]) for x in usage["lines"])
    assert lines == [("marketing", True, 3, "0.1800"), ("service", False, 1, "0")]
    assert (usage["units"], usage["total_cost"]) == (4, "0.1800")
    records = {r["wamid"]: r for r in ctx.queries.records(p.WABA, "2025-07")}
    assert {r["version"] for r in records.values()} == {2}
    reply_record = records["wamid.reply"]
    assert (reply_record["billable"], reply_record["rate"], reply_record["cost"]) == (
        False,
        "0.0070",
        "0",
    )
    again = fh.run_cli(environ, "rerate", "--month", "2025-07", "--waba", p.WABA).stdout
    assert "re-rated 4 records of 2025-07 (0 changed)" in again  # idempotent

    bad = wa_billing({**os.environ, **environ}, "rerate", "--month", "2025-13")
    assert bad.returncode == 2 and "must be YYYY-MM" in bad.stderr

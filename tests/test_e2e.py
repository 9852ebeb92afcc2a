"""End to end on real parts: gunicorn serving the app, RQ worker processes, a real Redis.

Signed webhooks go over HTTP; records and usage come back through the API and the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from processor.context import Context
from tests import payloads as p
from tests.conftest import TOKEN, signed_headers
from tests.fault_helpers import free_port, wait_for
from tests.ledger_helpers import write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The conftest environment with a test-owned rate book (tests/ledger_helpers.py: Brazil
    marketing 0.0625, utility tiers from 0.0068) and a 10 % + 0.0001 markup on the WABA."""
    config = write_config(tmp_path / "config")
    (config / "markup.csv").write_text(f"waba_id,percent,fixed_per_unit\n{p.WABA},10,0.0001\n")
    return {**environ, "BILLING_CONFIG_DIR": str(config)}


T0 = 1_751_400_000  # 2025-07-01T20:00Z, pmp-2025-07
H = 3_600


@pytest.fixture
def processes(environ: dict[str, str], ctx: Context) -> Iterator[str]:
    env = {**os.environ, **environ, "JANITOR_INTERVAL_SECONDS": "0.5"}
    port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "processor.web:create_app()",
        ],
        env=env,
    )
    workers = [
        subprocess.Popen([sys.executable, "-m", "processor.cli", "worker"], env=env)
        for _ in range(2)
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base), 90, "gunicorn to answer")
        yield base
    finally:
        for proc in [web, *workers]:
            proc.terminate()
        for proc in [web, *workers]:
            proc.wait(timeout=15)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=3).status_code == 200
    except requests.RequestException:  # not listening yet, or still booting
        return False


def post(base: str, doc: dict[str, Any]) -> int:
    body = p.raw(doc)
    return requests.post(
        f"{base}/webhook", data=body, headers=signed_headers(body), timeout=5
    ).status_code


def api(base: str, path: str) -> Any:
    reply = requests.get(f"{base}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert reply.status_code == 200, reply.text
    return reply.json()


def traffic() -> list[dict[str, Any]]:
    """A user writes in; the business answers free-form, then sends templates; one fails."""
    user = p.USER
    return [
        p.body(p.change(messages=[p.inbound("wamid.in1", T0, user)])),
        p.body(
            p.change(
                statuses=[
                    p.status(
                        "wamid.o1",
                        "sent",
                        T0 + 60,
                        category="service",
                        pricing_type="free_customer_service",
                    ),
                    p.status(
                        "wamid.o1",
                        "delivered",
                        T0 + 62,
                        category="service",
                        pricing_type="free_customer_service",
                    ),
                ]
            )
        ),
        p.body(
            p.change(
                statuses=[
                    p.status("wamid.o2", "read", T0 + 2 * H + 9),
                    p.status(
                        "wamid.o2",
                        "delivered",
                        T0 + 2 * H,
                        category="utility",
                        pricing_type="free_customer_service",
                    ),
                    p.status(
                        "wamid.o3",
                        "delivered",
                        T0 + 30 * H,
                        category="utility",
                        pricing_type="regular",
                    ),
                    p.status(
                        "wamid.o4",
                        "delivered",
                        T0 + 31 * H,
                        category="marketing",
                        pricing_type="regular",
                    ),
                    p.status("wamid.o5", "failed", T0 + 32 * H),
                ]
            )
        ),
    ]


def test_signed_webhooks_over_http_become_records_and_usage(
    processes: str, environ: dict[str, str]
) -> None:
    base = processes
    bodies = traffic()
    for doc in bodies:
        assert post(base, doc) == 200
    assert post(base, bodies[2]) == 200  # Meta redelivers a body
    month = f"/v1/records?waba_id={p.WABA}&month=2025-07"
    records = wait_for(
        lambda: len(api(base, month)["records"]) == 4 and api(base, month), 30, "4 records"
    )
    by_wamid = {r["wamid"]: r for r in records["records"]}
    assert set(by_wamid) == {"wamid.o1", "wamid.o2", "wamid.o3", "wamid.o4"}
    assert by_wamid["wamid.o2"]["free_reason"] == "free_customer_service"
    assert by_wamid["wamid.o3"]["billable"] is True
    assert by_wamid["wamid.o4"]["category"] == "marketing"
    usage = api(base, f"/v1/usage?waba_id={p.WABA}&month=2025-07")
    assert usage["units"] == 4
    # By hand: o1 (service) and o2 (utility, in the window the user's message opened) are
    # free; o3 is the month's first charged utility message (tier 1:2, 0.0068), o4 a marketing
    # message (0.0625); o5 failed (no unit). Billed: each x 1.10 + 0.0001.
    lines = sorted(
        (x["category"], x["billable"], x["free_reason"], x["count"], x["cost"], x["billed_cost"])
        for x in usage["lines"]
    )
    assert lines == [
        ("marketing", True, None, 1, "0.0625", "0.06885"),
        ("service", False, "free_customer_service", 1, "0", "0"),
        ("utility", False, "free_customer_service", 1, "0", "0"),
        ("utility", True, None, 1, "0.0068", "0.00758"),
    ]
    assert (usage["total_cost"], usage["total_billed_cost"]) == ("0.0693", "0.07643")
    assert by_wamid["wamid.o3"]["tier"] == "1:2"
    report = subprocess.run(
        [sys.executable, "-m", "processor.cli", "report", "--waba", p.WABA, "--month", "2025-07"],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "marketing" in report.stdout and "total cost 0.0693 USD" in report.stdout
    metrics = requests.get(f"{base}/metrics", timeout=5).text
    assert 'wa_billing_events_total{outcome="duplicate"} 5.0' in metrics, metrics

"""The pipeline in one process: signed POST -> inbox -> drain job -> records and usage."""

from __future__ import annotations

from typing import Any

from processor.context import Context
from tests import payloads as p
from tests.conftest import auth, signed_headers
from workers.drain import drain, use_context

T0 = 1_700_000_000  # 2023-11-14, cbp-2023
H = 3_600


def post(client: Any, doc: dict[str, Any]) -> Any:
    body = p.raw(doc)
    return client.post("/webhook", data=body, headers=signed_headers(body))


def run_workers(ctx: Context) -> dict[str, int]:
    use_context(ctx)
    return drain()


def records(client: Any, month: str = "2023-11", waba: str = p.WABA) -> list[dict[str, Any]]:
    reply = client.get(f"/v1/records?waba_id={waba}&month={month}&limit=1000", headers=auth())
    assert reply.status_code == 200, reply.json
    return sorted(reply.json["records"], key=lambda r: r["charge_time"])


def usage(client: Any, month: str = "2023-11", waba: str = p.WABA) -> dict[str, Any]:
    reply = client.get(f"/v1/usage?waba_id={waba}&month={month}", headers=auth())
    assert reply.status_code == 200, reply.json
    return reply.json


def test_signed_status_becomes_one_record(client: Any, ctx: Context) -> None:
    """A delivered marketing template under cbp-2023 opens one marketing conversation."""
    doc = p.body(
        p.change(
            statuses=[
                p.status("wamid.A", "sent", T0, category="marketing", conversation_id="c1",
                         expires=T0 + 24 * H),
                p.status("wamid.A", "delivered", T0 + 5, category="marketing",
                         conversation_id="c1"),
            ]
        )
    )
    assert post(client, doc).status_code == 200
    totals = run_workers(ctx)
    assert totals["events"] == 2
    [record] = records(client)
    assert record["category"] == "marketing"
    assert record["policy"] == "cbp-2023"
    assert record["charge_time"] == "2023-11-14T22:13:25Z"
    assert record["expires_at"] == "2023-11-15T22:13:20Z"
    assert record["billable"] is True
    assert record["source"] == "meta"
    assert record["meta_conversation_id"] == "c1"
    assert record["country"] == "BR"
    summary = usage(client)
    assert summary["units"] == 1
    assert summary["lines"][0]["count"] == 1

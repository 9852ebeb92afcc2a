"""The pipeline in one process: signed POST -> inbox -> drain job -> records and usage."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from processor.context import Context
from tests import payloads as p
from tests.conftest import TOKEN, auth, signed_headers
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
                p.status(
                    "wamid.A",
                    "sent",
                    T0,
                    category="marketing",
                    conversation_id="c1",
                    expires=T0 + 24 * H,
                ),
                p.status(
                    "wamid.A", "delivered", T0 + 5, category="marketing", conversation_id="c1"
                ),
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


def marketing(wamid: str, t: int, user: str = p.USER, conv: str | None = None) -> list[Any]:
    conv = conv or f"conv-{wamid}"
    return [
        p.status(
            wamid,
            "sent",
            t,
            user=user,
            category="marketing",
            conversation_id=conv,
            expires=t + 24 * H,
        ),
        p.status(wamid, "delivered", t + 3, user=user, category="marketing", conversation_id=conv),
        p.status(wamid, "read", t + 60, user=user),
    ]


def test_body_with_many_entries_changes_and_statuses(client: Any, ctx: Context) -> None:
    """Every entry x change x status of one POST is applied, from one drain job."""
    users = [f"55119{n:08d}" for n in range(12)]
    changes = [
        p.change(
            statuses=[s for u in users[i::3] for s in marketing(f"wamid.{u}", T0, u)], phone=p.PHONE
        )
        for i in range(3)
    ]
    doc = p.entries((p.WABA, changes[:2]), ("310000000000009", changes[2:]))
    assert post(client, doc).status_code == 200
    totals = run_workers(ctx)
    assert totals["events"] == 36
    assert ctx.queue.count == 1  # one job for the POST (drained here in-process)
    first, second = records(client), records(client, waba="310000000000009")
    assert len(first) == 8 and len(second) == 4
    assert {r["user_id"] for r in first + second} == set(users)


def test_redelivered_body_is_counted_once(client: Any, ctx: Context) -> None:
    doc = p.body(p.change(statuses=marketing("wamid.R", T0)))
    for _ in range(3):
        assert post(client, doc).status_code == 200
    totals = run_workers(ctx)
    # the sent and delivered copies are redeliveries; the read copies can never matter
    assert totals["duplicates"] == 4 and totals["unchanged"] == 3
    assert len(records(client)) == 1
    assert usage(client)["units"] == 1


def test_redelivered_single_status_days_later_is_counted_once(client: Any, ctx: Context) -> None:
    """Meta redelivers for days: the same status applied again changes nothing."""
    doc = p.body(p.change(statuses=marketing("wamid.S", T0)))
    post(client, doc)
    run_workers(ctx)
    before = records(client)
    single = p.body(p.change(statuses=[marketing("wamid.S", T0)[1]]))
    post(client, single)
    totals = run_workers(ctx)
    assert totals["duplicates"] == 1 and totals["records"] == 0
    assert records(client) == before


def test_read_before_delivered_charges_at_delivery(client: Any, ctx: Context) -> None:
    """`read` can arrive first; the charge time is the earlier of delivered and read."""
    sent, delivered, read = marketing("wamid.O", T0)
    read = {**read, "conversation": delivered["conversation"], "pricing": delivered["pricing"]}
    post(client, p.body(p.change(statuses=[read])))
    run_workers(ctx)
    [first] = records(client)
    assert first["charge_time"] == "2023-11-14T22:14:20Z"
    post(client, p.body(p.change(statuses=[delivered, sent])))
    run_workers(ctx)
    [corrected] = records(client)
    assert corrected["record_id"] == first["record_id"]
    assert corrected["charge_time"] == "2023-11-14T22:13:23Z"
    assert corrected["version"] > first["version"]  # a correction, same record_id
    assert usage(client)["units"] == 1


def test_failed_message_is_not_charged(client: Any, ctx: Context) -> None:
    sent = marketing("wamid.F", T0)[0]
    failed = p.status("wamid.F", "failed", T0 + 5)
    post(client, p.body(p.change(statuses=[sent, failed])))
    totals = run_workers(ctx)
    assert totals["events"] == 2
    assert records(client) == []
    assert usage(client)["units"] == 0


def test_malformed_event_is_quarantined_beside_good_ones(client: Any, ctx: Context) -> None:
    good = marketing("wamid.G", T0)
    bad = [
        {"id": "wamid.B1", "status": "delivered", "timestamp": "yesterday", "recipient_id": p.USER},
        {"id": "wamid.B2", "status": "exploded", "timestamp": str(T0), "recipient_id": p.USER},
        "not an object",
    ]
    post(client, p.body(p.change(statuses=[good[0], *bad, *good[1:]])))
    totals = run_workers(ctx)
    assert totals["events"] == 3 and totals["quarantined"] == 3
    assert len(records(client)) == 1
    listing = client.get("/v1/quarantine", headers=auth()).json
    assert listing["total"] == 3
    reasons = sorted(item["reason"] for item in listing["items"])
    assert reasons == [
        "item is not an object",
        "timestamp is not Unix seconds",
        "unknown status 'exploded'",
    ]
    assert all(
        item["path"].startswith("entry[0].changes[0].value.statuses[") for item in listing["items"]
    )


def test_poison_body_is_quarantined_and_the_worker_goes_on(client: Any, ctx: Context) -> None:
    ctx.inbox.push(b"this is not json")
    post(client, p.body(p.change(statuses=marketing("wamid.P", T0))))
    totals = run_workers(ctx)
    assert totals["bodies"] == 2 and totals["quarantined"] == 1
    assert len(records(client)) == 1
    [item] = client.get("/v1/quarantine", headers=auth()).json["items"]
    assert item["reason"].startswith("body: not valid JSON")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/usage?waba_id=1&month=2023-11",
        "/v1/records?waba_id=1&month=2023-11",
        "/v1/quarantine",
        "/v1/pending",
        "/v1/discrepancies?waba_id=1&month=2023-11",
        "/rq/",
    ],
)
@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token-xyz", "Basic " + base64.b64encode(b"x:wrong").decode(), "Token x"],
    ids=["none", "wrong-bearer", "wrong-basic", "other-scheme"],
)
def test_api_and_dashboard_need_the_token(client: Any, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    assert client.get(path, headers=headers).status_code == 401


def test_dashboard_accepts_basic_auth_with_the_token(client: Any) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()}
    reply = client.get("/rq/", headers=headers)
    assert reply.status_code == 200
    assert b"Connection Error" not in reply.data


@pytest.mark.parametrize(
    "query",
    [
        "waba_id=1",
        "month=2023-11",
        "waba_id=abc&month=2023-11",
        "waba_id=1&month=2023-13",
        "waba_id=1&month=2023-11&limit=0",
        "waba_id=1&month=2023-11&format=xml",
    ],
)
def test_bad_query_is_400(client: Any, query: str) -> None:
    assert client.get(f"/v1/records?{query}", headers=auth()).status_code == 400


def test_records_paginate_and_stream_as_jsonl(client: Any, ctx: Context) -> None:
    statuses = [s for n in range(25) for s in marketing(f"wamid.{n}", T0 + n, f"55119{n:08d}")]
    post(client, p.body(p.change(statuses=statuses)))
    run_workers(ctx)
    seen, cursor = [], 0
    while True:
        page = client.get(
            f"/v1/records?waba_id={p.WABA}&month=2023-11&limit=7&cursor={cursor}", headers=auth()
        ).json
        seen += [r["record_id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 25
    reply = client.get(f"/v1/records?waba_id={p.WABA}&month=2023-11&format=jsonl", headers=auth())
    lines = [json.loads(line) for line in reply.data.splitlines()]
    assert sorted(r["record_id"] for r in lines) == sorted(seen)


def test_healthz_and_metrics(client: Any, ctx: Context) -> None:
    post(client, p.body(p.change(statuses=marketing("wamid.M", T0))))
    client.post("/webhook", data=b"{}", headers={"Content-Type": "application/json"})
    health = client.get("/healthz").json
    assert health["status"] == "ok" and health["inbox_lag"] == 1
    run_workers(ctx)
    text = client.get("/metrics").data.decode()
    assert "wa_billing_webhooks_received_total 1.0" in text
    assert 'wa_billing_webhooks_rejected_total{reason="bad_signature"} 1.0' in text
    assert 'wa_billing_events_total{outcome="applied"} 2.0' in text
    assert 'wa_billing_events_total{outcome="unchanged"} 1.0' in text
    assert 'wa_billing_queue_depth{queue="inbox_lag"} 0.0' in text
    assert "wa_billing_processing_latency_seconds_count 1.0" in text


def test_discrepancies_are_listed_with_meta_answer_kept(client: Any, ctx: Context) -> None:
    """cbp-2023: Meta opens a new conversation where the model had one open; Meta's is kept."""
    first = p.status("wamid.D1", "delivered", T0, category="marketing", conversation_id="c1")
    second = p.status("wamid.D2", "delivered", T0 + H, category="marketing", conversation_id="c2")
    post(client, p.body(p.change(statuses=[first, second])))
    run_workers(ctx)
    reply = client.get(f"/v1/discrepancies?waba_id={p.WABA}&month=2023-11", headers=auth())
    [item] = reply.json["items"]
    assert item["meta_conversation_id"] == "c2"
    assert item["discrepancy"] == "meta_opened_conversation_model_had_one_open"
    assert len(records(client)) == 2  # Meta's two conversations are both billed

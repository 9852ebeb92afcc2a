"""Privacy: logs carry ids, never message text or a full phone number; quarantine keeps no
message text.

Bodies full of message text and phone numbers go through every path that logs: the webhook
(accepted, and refused for each reason), the drain (applied, rejected items, whole bodies
quarantined, an event the ledger fails on) and an RQ worker running the drain job.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from rq import SimpleWorker

from processor.context import Context
from tests import payloads as p
from tests.conftest import auth, signed_headers
from workers.drain import drain, use_context

T = 1_762_000_000  # 2025-11-01, pmp-2025-07
T_CBP = 1_700_000_000  # 2023-11-14, cbp-2023

# What users wrote: none of it may reach a log or the quarantine.
TEXTS = {
    "text": "SECRET-TEXT-42",
    "caption": "SECRET-CAPTION-43",
    "name": "SECRET-NAME-44",
    "title": "SECRET-TITLE-45",
    "description": "SECRET-DESCRIPTION-46",
    "address": "SECRET-ADDRESS-47",
    "emoji": "\U0001f92b",
    "headline": "SECRET-HEADLINE-48",
    "button": "SECRET-BUTTON-49",
}
# Users' numbers: no log may carry one in full.
PHONES = {
    "sender": "5511987654321",
    "recipient": "5511976543210",
    "participant": "5511965432109",
    "contact": "5511954321098",
    "malformed": "5511943210987",
    "refused": "5511932109876",
    "cbp": "5511921098765",
}


def messages(user: str, wamid: str, t: int | str) -> list[dict[str, Any]]:
    """Inbound messages of every kind that carries text, from ``user``."""
    base = {"from": user, "timestamp": str(t)}
    return [
        {**base, "id": f"{wamid}.t", "type": "text", "text": {"body": TEXTS["text"]}},
        {
            **base,
            "id": f"{wamid}.i",
            "type": "image",
            "image": {"caption": TEXTS["caption"], "mime_type": "image/jpeg", "id": "9"},
        },
        {
            **base,
            "id": f"{wamid}.b",
            "type": "interactive",
            "interactive": {
                "type": "list_reply",
                "list_reply": {
                    "id": "r1",
                    "title": TEXTS["title"],
                    "description": TEXTS["description"],
                },
            },
        },
        {
            **base,
            "id": f"{wamid}.l",
            "type": "location",
            "location": {"name": TEXTS["name"], "address": TEXTS["address"], "latitude": 1.5},
        },
        {
            **base,
            "id": f"{wamid}.r",
            "type": "reaction",
            "reaction": {"message_id": "wamid.0", "emoji": TEXTS["emoji"]},
        },
        {**base, "id": f"{wamid}.k", "type": "button", "button": {"text": TEXTS["button"]}},
        {
            **base,
            "id": f"{wamid}.c",
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": TEXTS["name"]},
                    "phones": [{"phone": PHONES["contact"]}],
                }
            ],
        },
        {
            **base,
            "id": f"{wamid}.a",
            "type": "text",
            "text": {"body": TEXTS["text"]},
            "referral": {"headline": TEXTS["headline"], "body": TEXTS["text"], "source_type": "ad"},
        },
    ]


def change_with_contacts(
    msgs: list[dict[str, Any]], statuses: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    change = p.change(messages=msgs, statuses=statuses)
    change["value"]["contacts"] = [{"profile": {"name": TEXTS["name"]}, "wa_id": PHONES["sender"]}]
    return change


def good_bodies() -> list[dict[str, Any]]:
    group = {
        **p.status("wamid.G", "delivered", T + 3, category="utility", pricing_type="regular"),
        "recipient_type": "group",
        "recipient_participant_id": PHONES["participant"],
    }
    statuses = [
        p.status("wamid.S", "sent", T + 1, PHONES["recipient"], "marketing", "c1", T + 99, "PMP"),
        p.status("wamid.S", "delivered", T + 2, PHONES["recipient"], "marketing", model="PMP"),
        p.status("wamid.S", "read", T + 3, PHONES["recipient"]),
        p.status("wamid.F", "failed", T + 4, PHONES["recipient"]),
        p.status("wamid.P", "delivered", T + 5, PHONES["recipient"]),  # pending: no category
        group,
    ]
    return [
        p.body(change_with_contacts(messages(PHONES["sender"], "wamid.in", T), statuses)),
        p.body(p.change(statuses=statuses[:2])),  # a redelivery: duplicates
    ]


def malformed_bodies() -> list[dict[str, Any]]:
    """Bodies whose items are rejected one by one (bad time, bad id, bad types)."""
    bad_time = messages(PHONES["malformed"], "wamid.bad", "yesterday")
    bad_type = [{**m, "type": "Not A Type"} for m in messages(PHONES["malformed"], "wamid.x", T)]
    bad_status = {
        **p.status("wamid.B", "delivered", T, PHONES["malformed"]),
        "status": "seen",
        "pricing": {"category": {"text": TEXTS["text"]}},
    }
    text_as_string = {
        "from": PHONES["malformed"],
        "id": 12,
        "timestamp": str(T),
        "type": "text",
        "text": TEXTS["text"],
        "body": TEXTS["text"],
    }
    old = p.status("wamid.O", "delivered", 946_684_900, PHONES["recipient"], "marketing")
    value = change_with_contacts(messages(PHONES["malformed"], "wamid.v", T))["value"]
    return [
        p.body(change_with_contacts(bad_time)),
        p.body(change_with_contacts(bad_type)),
        p.body(p.change(statuses=[bad_status, old])),
        p.body(change_with_contacts([text_as_string])),
        {"object": "whatsapp_business_account", "entry": {"text": TEXTS["text"]}},
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": p.WABA, "changes": [{"field": "messages", "value": [value]}]}],
        },
    ]


def ledger_failure_body() -> dict[str, Any]:
    """A body the ledger fails on (see ``failing_ledger``): it logs a traceback."""
    user = PHONES["cbp"]
    status = p.status("wamid.U", "delivered", T_CBP, user, "utility", "c-1", model="CBP")
    change = p.change(messages=messages(user, "wamid.cbp", T_CBP - 60), statuses=[status])
    return p.body(change)


def refused_posts() -> list[tuple[bytes, dict[str, str]]]:
    """Posts the endpoint refuses, each carrying text and a number: 400, 401, 413, 415."""
    doc = p.body(change_with_contacts(messages(PHONES["refused"], "wamid.ref", T)))
    body = p.raw(doc)
    truncated = body[: len(body) // 2]
    deep = (b'{"text": "' + TEXTS["text"].encode() + b'", "x": ') + b"[" * 100 + b"]" * 100 + b"}"
    not_utf8 = body.replace(b"SECRET", b"\xffSECRET")
    return [
        (body, {"Content-Type": "application/json"}),  # unsigned
        (body, {**signed_headers(body + b" "), "Content-Type": "application/json"}),  # wrong
        (body, {**signed_headers(body), "Content-Type": "text/plain"}),
        (truncated, signed_headers(truncated)),
        (deep, signed_headers(deep)),
        (not_utf8, signed_headers(not_utf8)),
        (body + b" " * (5 * 1024 * 1024), signed_headers(body)),
    ]


def post(client: Any, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("processor", "workers", "rq", "rq.worker", "werkzeug", "flask.app"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.fixture
def failing_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the rules for one user, whose exception message carries the user's number."""
    from processor.core import decide

    real = decide.evaluate

    def evaluate(pair: Any, *args: Any) -> Any:
        if pair.user_id == PHONES["cbp"]:
            raise RuntimeError(f"no rule for {pair.user_id}: {TEXTS['text']}")
        return real(pair, *args)

    monkeypatch.setattr(decide, "evaluate", evaluate)


@pytest.fixture
def processed(
    client: Any, ctx: Context, logs: pytest.LogCaptureFixture, failing_ledger: None
) -> Context:
    """Every body posted, refused or processed (by the drain, then by an RQ worker)."""
    for body, headers in refused_posts():
        assert client.post("/webhook", data=body, headers=headers).status_code in (
            400,
            401,
            413,
            415,
        )
    for doc in [*good_bodies(), *malformed_bodies(), ledger_failure_body()]:
        post(client, doc)
    # Bodies only a replay could bring (the endpoint refuses them): quarantined whole.
    for raw in (
        TEXTS["text"].encode() + PHONES["sender"].encode(),
        b'["' + TEXTS["text"].encode() + b'"]',
    ):
        ctx.inbox.push(raw)
    use_context(ctx)
    drain()
    post(client, good_bodies()[0])  # again, for the RQ worker's drain job
    ctx.enqueue_drain()
    SimpleWorker([ctx.queue], connection=ctx.redis).work(burst=True)
    assert ctx.inbox.backlog() == {"lag": 0, "pending": 0}
    return ctx


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What was logged while the fixtures ran (``processed``) and during the test."""
    return caplog.get_records("setup") + caplog.get_records("call")


def formatted(record: logging.LogRecord) -> str:
    """All a log handler could write: the message, the traceback, the stack."""
    text = record.getMessage()
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        text += record.exc_text
    if record.stack_info:
        text += record.stack_info
    return text


def secrets_in(text: str) -> list[str]:
    found = [value for value in TEXTS.values() if value in text]
    return found + [number for number in PHONES.values() if number in text]


def test_the_payloads_did_go_through_every_logging_path(
    processed: Context, logs: pytest.LogCaptureFixture
) -> None:
    """The paths under test did run: refusals, rejected items, a ledger failure, the RQ job."""
    logged = records(logs)
    messages = [record.getMessage() for record in logged]
    assert any("rejected a webhook" in m for m in messages)
    assert any("deciding event" in m for m in messages)
    reasons = [item["reason"] for item in processed.quarantine.list(1000)["items"]]
    assert any(r.startswith("body:") for r in reasons)
    assert len(reasons) >= 20
    assert any(record.name.startswith("rq.worker") for record in logged)


def test_no_log_carries_message_text_or_a_phone_number(
    processed: Context, logs: pytest.LogCaptureFixture
) -> None:
    """Every log record, traceback included, at DEBUG: ids only."""
    logged = records(logs)
    assert len(logged) > 50
    leaks = {formatted(r): secrets_in(formatted(r)) for r in logged}
    assert {text: found for text, found in leaks.items() if found} == {}


def texts_in(text: str) -> list[str]:
    """The message texts in ``text``, as written or JSON-escaped (as in a preview)."""
    return [v for v in TEXTS.values() if v in text or json.dumps(v)[1:-1] in text]


def test_quarantine_keeps_no_message_text(processed: Context) -> None:
    """Quarantined items keep their place and reason, with message text redacted."""
    items = processed.quarantine.list(1000)["items"]
    dump = json.dumps(items, ensure_ascii=False)
    assert texts_in(dump) == []
    assert "<redacted>" in dump


def test_quarantine_keeps_no_document_file_name(ctx: Context) -> None:
    """A document's file name is the user's words too (``Exam results Maria.pdf``)."""
    document = {
        "from": PHONES["malformed"],
        "id": "wamid.d",
        "timestamp": "yesterday",
        "type": "document",
        "document": {"filename": "SECRET-FILE-NAME.pdf", "caption": TEXTS["caption"]},
    }
    ctx.inbox.push(p.raw(p.body(p.change(messages=[document]))))
    use_context(ctx)
    drain()
    dump = json.dumps(ctx.quarantine.list()["items"])
    assert "wamid.d" in dump and TEXTS["caption"] not in dump
    assert "SECRET-FILE-NAME" not in dump


def test_the_quarantine_api_shows_no_message_text(client: Any, processed: Context) -> None:
    """The same through ``/v1/quarantine``."""
    reply = client.get("/v1/quarantine?limit=1000", headers=auth())
    assert reply.status_code == 200
    assert texts_in(reply.get_data(as_text=True)) == []

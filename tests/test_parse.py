"""Parsing Meta's bodies into typed events; malformed items are rejected one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processor.core.events import Conversation, Inbound, Pricing, Status
from processor.core.parse import parse_body
from processor.errors import BadPayload
from tests import payloads as p

T = 1_762_000_000


def parse(doc: dict[str, Any]) -> Any:
    return parse_body(json.dumps(doc).encode())


def test_inbound_with_referral() -> None:
    [event] = parse(p.body(p.change(messages=[p.inbound("wamid.1", T, referral=True)]))).events
    assert isinstance(event, Inbound)
    assert event.referral and event.timestamp == T and event.pair.phone_number_id == p.PHONE
    assert event.pair.waba_id == p.WABA and event.pair.user_id == p.USER


def test_status_with_conversation_and_pricing() -> None:
    item = p.status(
        "wamid.2",
        "sent",
        T,
        category="authentication-international",
        conversation_id="c9",
        expires=T + 86_400,
        pricing_type="regular",
    )
    [event] = parse(p.body(p.change(statuses=[item]))).events
    assert isinstance(event, Status)
    assert event.pricing == Pricing(True, "PMP", "authentication_international", "regular")
    assert event.conversation == Conversation("c9", T + 86_400, "authentication_international")


def test_failed_status_keeps_error_codes() -> None:
    [event] = parse(p.body(p.change(statuses=[p.status("wamid.3", "failed", T)]))).events
    assert event.error_codes == (131049,)


def test_business_scoped_user_id() -> None:
    item = p.status("wamid.4", "delivered", T, user="US.13491208655302741918")
    [event] = parse(p.body(p.change(statuses=[item]))).events
    assert event.pair.user_id == "US.13491208655302741918"


def test_group_status_bills_the_participant() -> None:
    item = {
        **p.status("wamid.5", "delivered", T),
        "recipient_type": "group",
        "recipient_id": "120363000000000000",
        "recipient_participant_id": "5511911112222",
    }
    [event] = parse(p.body(p.change(statuses=[item]))).events
    # the group's own pair (rule book 7.5), the participant as the delivery's user
    assert (event.pair.user_id, event.participant) == ("group:120363000000000000", "5511911112222")


BAD_STATUS = [
    ({"status": "delivered", "timestamp": str(T), "recipient_id": p.USER}, "id is not"),
    ({"id": "w", "status": "delivered", "timestamp": "-1", "recipient_id": p.USER}, "timestamp"),
    (
        {"id": "w", "status": "delivered", "timestamp": "99999999999", "recipient_id": p.USER},
        "out of range",
    ),
    (
        {"id": "w", "status": "delivered", "timestamp": str(T), "recipient_id": "+55 11"},
        "recipient",
    ),
    ({"id": "w", "status": "delivered", "timestamp": str(T), "recipient_id": 5511}, "recipient"),
    ({"id": "w", "status": "lost", "timestamp": str(T), "recipient_id": p.USER}, "unknown status"),
    (
        {"id": "w", "status": "sent", "timestamp": str(T), "recipient_id": p.USER, "pricing": []},
        "pricing is not",
    ),
    (
        {
            "id": "w",
            "status": "sent",
            "timestamp": str(T),
            "recipient_id": p.USER,
            "pricing": {"billable": "yes"},
        },
        "billable",
    ),
    (
        {
            "id": "w",
            "status": "sent",
            "timestamp": str(T),
            "recipient_id": p.USER,
            "conversation": {"id": 7},
        },
        "conversation.id",
    ),
    ({"id": "w", "status": "sent", "timestamp": True, "recipient_id": p.USER}, "timestamp"),
    ({"id": "w" * 600, "status": "sent", "timestamp": str(T), "recipient_id": p.USER}, "id is not"),
]


@pytest.mark.parametrize(("item", "reason"), BAD_STATUS, ids=[r for _, r in BAD_STATUS])
def test_malformed_status_is_rejected_with_reason_and_path(
    item: dict[str, Any], reason: str
) -> None:
    good = p.status("wamid.ok", "delivered", T)
    parsed = parse(p.body(p.change(statuses=[good, item])))
    assert [e.wamid for e in parsed.events] == ["wamid.ok"]
    [rejected] = parsed.rejected
    assert reason in rejected.reason
    assert rejected.path == "entry[0].changes[0].value.statuses[1]"


def test_message_text_is_redacted_in_rejected_items() -> None:
    item = {**p.inbound("wamid.t", T), "timestamp": "soon", "text": {"body": "my card is 1234"}}
    [rejected] = parse(p.body(p.change(messages=[item]))).rejected
    assert "1234" not in json.dumps(rejected.item)


def test_missing_phone_number_id_rejects_the_items() -> None:
    change = p.change(statuses=[p.status("wamid.6", "delivered", T)])
    del change["value"]["metadata"]
    parsed = parse(p.body(change))
    assert not parsed.events and len(parsed.rejected) == 1


def test_other_fields_are_ignored_not_rejected() -> None:
    doc = p.body(
        {"field": "account_update", "value": {"event": "X"}},
        p.change(statuses=[p.status("wamid.7", "read", T)]),
    )
    parsed = parse(doc)
    assert parsed.ignored == 1 and len(parsed.events) == 1 and not parsed.rejected


@pytest.mark.parametrize("raw", [b"", b"[]", b"nul", b"\xc3\x28", b"[" * 10_000])
def test_body_that_is_not_a_json_object_is_bad_payload(raw: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_body(raw)

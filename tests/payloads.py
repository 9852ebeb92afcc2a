"""Meta-shaped webhook bodies for tests and the benchmark's traffic generator."""

from __future__ import annotations

import json
from typing import Any

WABA = "310000000000001"
PHONE = "420000000000002"
USER = "5511988887777"  # Brazil


def inbound(
    wamid: str,
    t: int,
    user: str = USER,
    referral: bool = False,
    msg_type: str = "text",
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "from": user,
        "id": wamid,
        "timestamp": str(t),
        "type": msg_type,
        msg_type: {"body": "hello"} if msg_type == "text" else {},
    }
    if referral:
        message["referral"] = {
            "source_url": "https://fb.me/x",
            "source_id": "120200000000000001",
            "source_type": "ad",
            "ctwa_clid": "ARAbc",
        }
    return message


def status(
    wamid: str,
    state: str,
    t: int,
    user: str = USER,
    category: str | None = None,
    conversation_id: str | None = None,
    expires: int | None = None,
    model: str | None = None,
    pricing_type: str | None = None,
    billable: bool | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": state, "timestamp": str(t), "recipient_id": user}
    if conversation_id is not None:
        conversation: dict[str, Any] = {"id": conversation_id}
        if origin or category:
            conversation["origin"] = {"type": origin or category}
        if expires is not None:
            conversation["expiration_timestamp"] = str(expires)
        item["conversation"] = conversation
    if category is not None or pricing_type is not None:
        pricing: dict[str, Any] = {
            "billable": True if billable is None else billable,
            "pricing_model": model or ("PMP" if pricing_type else "CBP"),
        }
        if category is not None:
            pricing["category"] = category
        if pricing_type is not None:
            pricing["type"] = pricing_type
        item["pricing"] = pricing
    if state == "failed":
        item["errors"] = [{"code": 131049, "title": "not delivered"}]
    return item


def change(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    phone: str = PHONE,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511900000000", "phone_number_id": phone},
    }
    if messages:
        value["messages"] = messages
        value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": messages[0]["from"]}]
    if statuses:
        value["statuses"] = statuses
    return {"field": "messages", "value": value}


def body(*changes: dict[str, Any], waba: str = WABA) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": list(changes)}],
    }


def entries(*entries: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A body with several entries: ``(waba_id, [change, ...])`` each."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": changes} for waba, changes in entries],
    }


def raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()

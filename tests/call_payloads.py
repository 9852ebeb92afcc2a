"""``calls`` webhook bodies in the shapes of rule book §8.3 (Meta's Calling API reference and the
real 2025-10-17 log), for the call tests."""

from __future__ import annotations

from typing import Any

from tests.payloads import PHONE, WABA

BUSINESS = "16315553602"  # the business number's display digits (§8.3 sample)
GEORGIA = "995591234567"  # a Georgian mobile: market Rest of Central & Eastern Europe


def connect(call_id: str, t: int, user: str = GEORGIA, uic: bool = False) -> dict[str, Any]:
    """A ``connect``: SDP offer for a UIC (the user calls), answer for a BIC."""
    caller, callee = (user, BUSINESS) if uic else (BUSINESS, user)
    return {
        "id": call_id,
        "to": callee,
        "from": caller,
        "event": "connect",
        "timestamp": str(t),
        "direction": "USER_INITIATED" if uic else "BUSINESS_INITIATED",
        "session": {"sdp_type": "offer" if uic else "answer", "sdp": "v=0..."},
    }


def terminate(
    call_id: str,
    t: int,
    duration: int | None = None,
    user: str | None = GEORGIA,
    uic: bool = False,
    status: str = "COMPLETED",
    start: int | None = None,
    end: int | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """A ``terminate``: ``start_time``/``end_time``/``duration`` only when it was picked up
    (``start``/``end`` default to the ``duration`` seconds ending at ``t``)."""
    caller, callee = (user, BUSINESS) if uic else (BUSINESS, user)
    item: dict[str, Any] = {"id": call_id, "from": caller, "to": callee}
    if user_id is not None:
        item["from_user_id" if uic else "to_user_id"] = user_id
    item = {k: v for k, v in item.items() if v is not None}
    item.update(
        {
            "event": "terminate",
            "direction": "USER_INITIATED" if uic else "BUSINESS_INITIATED",
            "biz_opaque_callback_data": "random_string",
            "timestamp": str(t),
            "status": status,
        }
    )
    if duration is not None:
        end = t if end is None else end
        start = end - duration if start is None else start
        item.update({"start_time": str(start), "end_time": str(end), "duration": duration})
    if status.upper() == "FAILED":
        item["errors"] = [{"code": 138021, "title": "no media for a long time"}]
    return item


def call_status(call_id: str, state: str, t: int, user: str = GEORGIA) -> dict[str, Any]:
    """A call status (BIC only) in ``value.statuses[]``: RINGING, ACCEPTED or REJECTED."""
    return {
        "id": call_id,
        "timestamp": str(t),
        "type": "call",
        "status": state,
        "recipient_id": user,
        "biz_opaque_callback_data": "random_string",
    }


def calls_body(
    calls: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    waba: str = WABA,
    phone: str = PHONE,
) -> dict[str, Any]:
    """One ``calls`` change of one WABA's number."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": BUSINESS, "phone_number_id": phone},
    }
    if calls:
        value["calls"] = calls
        value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": GEORGIA}]
    if statuses:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "calls", "value": value}]}],
    }

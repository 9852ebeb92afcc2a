"""Meta's ``calls`` webhook items -> :class:`CallEvent` (rule book §8.3).

``value.calls[]`` holds ``connect`` (``call_created`` for SIP) and ``terminate``;
``value.statuses[]`` items with ``type: call`` are the call statuses of a business-initiated
call (RINGING, ACCEPTED, REJECTED). The user of a BIC is its callee (``to``, else
``to_user_id``), of a UIC its caller (``from``, else ``from_user_id``). Events that carry
nothing billable (``call_recording_available``, ``call_transcription_available``) are skipped.
A malformed item raises :class:`BadPayload` (the caller quarantines it with its path).
"""

from __future__ import annotations

from typing import Any

from processor.core import parse
from processor.core.calls import BUSINESS_INITIATED, USER_INITIATED
from processor.core.events import CallEvent, Pair
from processor.errors import BadPayload

CONNECT_EVENTS = frozenset({"connect", "call_created"})
TERMINATE = "terminate"
CALL_STATUSES = frozenset({"ringing", "accepted", "rejected"})
TERMINATE_STATUSES = frozenset({"COMPLETED", "FAILED"})
DIRECTIONS = {"BUSINESS_INITIATED": BUSINESS_INITIATED, "USER_INITIATED": USER_INITIATED}
_CALL_ID_MAX = 512
_DURATION_MAX = 7 * 86_400


def call_item(waba_id: str, phone_number_id: str, item: dict[str, Any]) -> CallEvent | None:
    """One ``calls[]`` item; None for events without billing facts."""
    event = item.get("event")
    if not isinstance(event, str):
        raise BadPayload("call event missing or not a string")
    if event not in CONNECT_EVENTS and event != TERMINATE:
        return None
    direction = DIRECTIONS.get(str(item.get("direction")).upper())
    if direction is None:
        raise BadPayload(f"unknown call direction {parse._short(item.get('direction'))}")
    side = "to" if direction == BUSINESS_INITIATED else "from"
    user = item.get(side) or item.get(f"{side}_user_id")
    pair = Pair(waba_id, phone_number_id, parse._user(user, side))
    call_id, timestamp = _call_id(item.get("id")), parse._timestamp(item.get("timestamp"))
    if event in CONNECT_EVENTS:
        return CallEvent(pair, call_id, "connect", timestamp, direction)
    return CallEvent(
        pair,
        call_id,
        TERMINATE,
        timestamp,
        direction,
        status=_terminate_status(item.get("status")),
        start_time=_optional_time(item, "start_time"),
        end_time=_optional_time(item, "end_time"),
        duration=_duration(item.get("duration")),
    )


def call_status(waba_id: str, phone_number_id: str, item: dict[str, Any]) -> CallEvent:
    """One ``statuses[]`` item with ``type: call``: a status of a business-initiated call."""
    status = item.get("status")
    name = status.lower() if isinstance(status, str) else None
    if name not in CALL_STATUSES:
        raise BadPayload(f"unknown call status {parse._short(status)}")
    user = item.get("recipient_id") or item.get("recipient_user_id")
    return CallEvent(
        pair=Pair(waba_id, phone_number_id, parse._user(user, "recipient_id")),
        call_id=_call_id(item.get("id")),
        event=name,
        timestamp=parse._timestamp(item.get("timestamp")),
    )


def _call_id(raw: Any) -> str:
    if not parse._printable(raw, _CALL_ID_MAX) or "|" in raw:
        raise BadPayload("id is not a call id")
    return str(raw)


def _terminate_status(raw: Any) -> str | None:
    """COMPLETED or FAILED in any case (Meta's UIC page prints "Failed", "Completed")."""
    if raw is None:
        return None
    if not isinstance(raw, str) or raw.upper() not in TERMINATE_STATUSES:
        raise BadPayload(f"unknown terminate status {parse._short(raw)}")
    return raw.upper()


def _optional_time(item: dict[str, Any], name: str) -> int | None:
    raw = item.get(name)
    return None if raw is None else parse._timestamp(raw, name)


def _duration(raw: Any) -> int | None:
    """Seconds as an integer; a numeric string is accepted (rule book §8.3 parser notes)."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 9:
        raw = int(raw)
    if not parse._is_int(raw) or not 0 <= raw <= _DURATION_MAX:
        raise BadPayload("duration is not a number of seconds")
    return int(raw)

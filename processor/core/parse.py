"""Meta's webhook bodies -> typed events.

Every ``entry[] x changes[] x messages[]/statuses[]`` item is parsed on its own: a malformed
item becomes a :class:`Rejected` with its reason and path, and the others still flow. Only a
body that is not a JSON object at all is refused as a whole (:class:`BadPayload`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from processor.core import (  # call_parse reads this module's checks at call time
    call_parse,
    fastjson,
)
from processor.core.events import (
    FAILED,
    STATUSES,
    Conversation,
    Event,
    Inbound,
    Pair,
    ParsedBody,
    Pricing,
    Rejected,
    Status,
)
from processor.core.groups import CHARGED, GROUP_ID, WITHOUT_PARTICIPANT, group_pair
from processor.errors import BadPayload

OBJECT = "whatsapp_business_account"
FIELD = "messages"
CALLS_FIELD = "calls"  # calls and call statuses (processor.core.call_parse)
MIN_TIME, MAX_TIME = 946_684_800, 4_102_444_800  # 2000-01-01 .. 2100-01-01
_ID = re.compile(r"[0-9]{1,32}")
_USER = re.compile(r"[0-9]{4,20}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
_WAMID_MAX = 512
# Where a group status names its participant, in order (Meta's samples misspell the first).
_PARTICIPANT_KEYS = (
    "recipient_participant_id",
    "participant_recipient_id",
    "recipient_participant_user_id",
)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_ITEM_PREVIEW = 2_000


def load_json_object(raw: bytes, max_depth: int = 64) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object no deeper than ``max_depth``, or raise BadPayload."""
    try:
        data = fastjson.loads(raw)  # json.loads(raw.decode("utf-8")), faster
    except RecursionError:
        raise BadPayload("JSON nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and over-long integers
        raise BadPayload(f"not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise BadPayload("JSON body is not an object")
    deep = raw.count(b"{") + raw.count(b"[") > max_depth  # else no walk can go deeper
    if deep and _depth(data, max_depth) > max_depth:
        raise BadPayload(f"JSON nested deeper than {max_depth}")
    return data


def _depth(node: Any, limit: int) -> int:
    """Nesting depth of ``node``, level by level, stopping early once ``limit`` is passed."""
    level, frontier = 1, [node]
    while True:
        below = []
        for item in frontier:
            for value in item.values() if type(item) is dict else item:
                if type(value) is dict or type(value) is list:
                    below.append(value)
        if not below:
            return level
        level += 1
        if level > limit:
            return level
        frontier = below


def parse_body(raw: bytes, max_depth: int = 64) -> ParsedBody:
    """Parse a raw webhook body into events, rejected items and a count of ignored changes."""
    return parse_document(load_json_object(raw, max_depth))


def parse_document(doc: dict[str, Any]) -> ParsedBody:
    events: list[Event] = []
    rejected: list[Rejected] = []
    ignored = 0
    if doc.get("object") != OBJECT:
        return ParsedBody((), (), 1)
    entries = doc.get("entry")
    if not isinstance(entries, list):
        return ParsedBody((), (Rejected("entry is not a list", "entry", _preview(entries)),), 0)
    for path, waba_id, value in _message_changes(entries, rejected):
        if value is None:
            ignored += 1
            continue
        _parse_value(path, waba_id, value, events, rejected)
    return ParsedBody(tuple(events), tuple(rejected), ignored)


def _message_changes(
    entries: list[Any], rejected: list[Rejected]
) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Yield ``(path, waba_id, value)`` per change; ``value`` is None for other fields."""
    for i, entry in enumerate(entries):
        path = f"entry[{i}]"
        if not isinstance(entry, dict):
            rejected.append(Rejected("entry is not an object", path, _preview(entry)))
            continue
        waba_id = entry.get("id")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            rejected.append(Rejected("changes is not a list", path, _preview(entry)))
            continue
        for j, change in enumerate(changes):
            cpath = f"{path}.changes[{j}]"
            if not isinstance(change, dict):
                rejected.append(Rejected("change is not an object", cpath, _preview(change)))
            elif change.get("field") not in (FIELD, CALLS_FIELD):
                yield cpath, "", None
            elif not isinstance(waba_id, str) or not _is_id(waba_id):
                rejected.append(Rejected("entry.id is not a WABA id", path, _preview(waba_id)))
            elif not isinstance(change.get("value"), dict):
                rejected.append(Rejected("value is not an object", cpath, _preview(change)))
            else:
                yield f"{cpath}.value", waba_id, change["value"]


def _parse_value(
    path: str, waba_id: str, value: dict[str, Any], events: list[Event], rejected: list[Rejected]
) -> None:
    metadata = value.get("metadata")
    phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    for key, parse_item in (("messages", _inbound), ("statuses", _status), ("calls", _call)):
        items = value.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            rejected.append(Rejected(f"{key} is not a list", f"{path}.{key}", _preview(items)))
            continue
        for k, item in enumerate(items):
            ipath = f"{path}.{key}[{k}]"
            try:
                if not isinstance(phone_number_id, str) or not _is_id(phone_number_id):
                    raise BadPayload("metadata.phone_number_id missing or not an id")
                if not isinstance(item, dict):
                    raise BadPayload("item is not an object")
                event = parse_item(waba_id, phone_number_id, item)
                if event is not None:  # None: a call event without billing facts
                    events.append(event)
            except BadPayload as exc:
                rejected.append(Rejected(str(exc), ipath, _preview(item)))


def _inbound(waba_id: str, phone_number_id: str, item: dict[str, Any]) -> Inbound:
    msg_type = _name(item.get("type"), "type")
    pair = Pair(waba_id, phone_number_id, _user(item.get("from"), "from"))
    if item.get("group_id") is not None:  # a member wrote in a group: the group's window
        pair = group_pair(waba_id, phone_number_id, _group(item.get("group_id"), "group_id"))
    return Inbound(
        pair=pair,
        wamid=_wamid(item.get("id")),
        timestamp=_timestamp(item.get("timestamp")),
        msg_type=msg_type,
        referral=isinstance(item.get("referral"), dict),
    )


def _call(waba_id: str, phone_number_id: str, item: dict[str, Any]) -> Event | None:
    return call_parse.call_item(waba_id, phone_number_id, item)


def _status(waba_id: str, phone_number_id: str, item: dict[str, Any]) -> Event:
    if item.get("type") == "call":  # a call's status (rule book 8.3)
        return call_parse.call_status(waba_id, phone_number_id, item)
    status = item.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise BadPayload(f"unknown status {_short(status)}")
    if item.get("recipient_type") == "group":
        return _group_status(waba_id, phone_number_id, item, status)
    recipient = item.get("recipient_id")
    errors = item.get("errors")
    codes: tuple[int, ...] = ()
    if status == FAILED and isinstance(errors, list):
        codes = tuple(
            e["code"] for e in errors[:10] if isinstance(e, dict) and _is_int(e.get("code"))
        )
    return Status(
        pair=Pair(waba_id, phone_number_id, _user(recipient, "recipient_id")),
        wamid=_wamid(item.get("id")),
        status=status,
        timestamp=_timestamp(item.get("timestamp")),
        conversation=_conversation(item.get("conversation")),
        pricing=_pricing(item.get("pricing")),
        error_codes=codes,
    )


def _group_status(waba_id: str, phone_number_id: str, item: dict[str, Any], status: str) -> Status:
    """A status of a group message: group-level (``sent``, ``failed``) or one participant's.
    Meta's samples spell the participant ``participant_recipient_id`` and nest ``pricing`` in
    ``conversation``: both are read (rule book 7.4)."""
    group = _group(item.get("recipient_id"), "recipient_id")
    raw = next((item[k] for k in _PARTICIPANT_KEYS if item.get(k) is not None), None)
    participant = None if raw is None else _user(raw, "recipient_participant_id")
    if participant is None and status in CHARGED:
        raise BadPayload(WITHOUT_PARTICIPANT)
    conversation = item.get("conversation")
    pricing = item.get("pricing")
    if pricing is None and isinstance(conversation, dict):
        pricing = conversation.get("pricing")
    return Status(
        pair=group_pair(waba_id, phone_number_id, group),
        wamid=_wamid(item.get("id")),
        status=status,
        timestamp=_timestamp(item.get("timestamp")),
        conversation=_conversation(conversation),
        pricing=_pricing(pricing),
        participant=participant,
    )


def _group(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not GROUP_ID.fullmatch(raw):
        raise BadPayload(f"{what} is not a group id")
    return raw


def _conversation(raw: Any) -> Conversation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadPayload("conversation is not an object")
    conv_id = raw.get("id")
    if conv_id is not None and not _printable(conv_id, 256):
        raise BadPayload("conversation.id is not a printable string")
    expires = raw.get("expiration_timestamp")
    origin = raw.get("origin")
    origin_type = origin.get("type") if isinstance(origin, dict) else None
    return Conversation(
        id=conv_id,
        expires_at=None if expires is None else _timestamp(expires, "expiration_timestamp"),
        origin=None if origin_type is None else category_name(origin_type),
    )


def _pricing(raw: Any) -> Pricing | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadPayload("pricing is not an object")
    billable = raw.get("billable")
    if billable is not None and not isinstance(billable, bool):
        raise BadPayload("pricing.billable is not a boolean")
    model, category, ptype = raw.get("pricing_model"), raw.get("category"), raw.get("type")
    if model is not None and model not in ("CBP", "PMP", "NBP"):
        raise BadPayload(f"unknown pricing_model {_short(model)}")
    subtype = raw.get("subtype")
    if subtype is not None and not _printable(subtype, 64):
        raise BadPayload("pricing.subtype is not a printable string")
    return Pricing(
        billable=billable,
        model=model,
        category=None if category is None else category_name(category),
        type=None if ptype is None else _name(ptype, "pricing.type"),
        subtype=subtype,
    )


def category_name(raw: Any) -> str:
    """Normalise Meta's category spellings (``authentication-international`` == ``..._...``)."""
    if not isinstance(raw, str):
        raise BadPayload("category is not a string")
    return _name(raw.strip().lower().replace("-", "_"), "category")


def _name(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _NAME.fullmatch(raw):
        raise BadPayload(f"{what} missing or malformed")
    return raw


def _user(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _USER.fullmatch(raw):
        raise BadPayload(f"{what} is not a phone number or business-scoped user id")
    return raw


def _wamid(raw: Any) -> str:
    if not _printable(raw, _WAMID_MAX):
        raise BadPayload("id is not a message id")
    return str(raw)


def _printable(raw: Any, longest: int) -> bool:
    """A non-empty printable string of at most ``longest`` characters (no lone surrogates)."""
    return isinstance(raw, str) and 0 < len(raw) <= longest and raw.isprintable()


def _timestamp(raw: Any, what: str = "timestamp") -> int:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        value = int(raw)
    elif _is_int(raw):
        value = raw
    else:
        raise BadPayload(f"{what} is not Unix seconds")
    if not MIN_TIME <= value < MAX_TIME:
        raise BadPayload(f"{what} out of range")
    return value


def _is_int(raw: Any) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _is_id(raw: Any) -> bool:
    return isinstance(raw, str) and _ID.fullmatch(raw) is not None


def _short(raw: Any) -> str:
    return repr(raw)[:40]


_PRIVATE = frozenset(
    {
        "text",
        "body",
        "filename",
        "caption",
        "name",
        "profile",
        "headline",
        "welcome_message",
        "title",
        "description",
        "response_json",
        "emoji",
        "address",
        "latitude",
        "longitude",
        "contacts",
        "sdp",  # a call's session description: the parties' network addresses
    }
)


def _preview(item: Any) -> Any:
    """The item as kept in quarantine: message text redacted, big items cut."""
    text = json.dumps(_redact(item, 0), default=str)
    return text if len(text) <= _ITEM_PREVIEW else text[:_ITEM_PREVIEW] + "..."


def _redact(item: Any, depth: int) -> Any:
    if depth > 8:
        return "..."
    if isinstance(item, dict):
        return {
            str(k)[:64]: "<redacted>" if k in _PRIVATE else _redact(v, depth + 1)
            for k, v in list(item.items())[:50]
        }
    if isinstance(item, list):
        return [_redact(v, depth + 1) for v in item[:20]]
    return item

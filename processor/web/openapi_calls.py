"""The OpenAPI parts of calls (rule book §8.4): a call record's fields, a call quote's request
and its extra answer fields. Optional properties: they are present on calls only."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
CALLEE_PATTERN = r"^(\+?[0-9]{4,20}|[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128})$"
TENTHS = {"type": "string", "pattern": r"^[0-9]+\.[0-9]$", "example": "2.0"}


def call_fields(quote: bool) -> Schema:
    """Properties of a call record (``quote``: of a call quote)."""
    fields: Schema = {
        "direction": {"type": "string", "enum": ["business_initiated", "user_initiated"]},
        "duration_s": {"type": "integer", "minimum": 0},
        "pulses": {"type": "integer", "minimum": 0, "description": "6-second pulses, rounded up"},
        "billed_minutes": {**TENTHS, "description": "pulses / 10"},
        "tier_minutes_after": {
            **TENTHS,
            "nullable": True,
            "description": "The tier bucket's billed minutes after this call; the tier is "
            "chosen by it, for the whole call.",
        },
    }
    if quote:
        fields["country_source"] = {"type": "string", "enum": ["phone", "bsuid", "unknown"]}
        return fields
    time = {"type": "string", "format": "date-time", "nullable": True}
    fields.update(
        call_id={"type": "string", "description": "Meta's call id (wacid)"},
        call_status={"type": "string", "enum": ["COMPLETED", "FAILED"]},
        start_time=time,
        end_time=time,
    )
    return fields


def call_quote_request(time: Schema, waba_pattern: str) -> Schema:
    """``{"kind": "call", "to": ..., "duration_s": ...}``: a call ending at ``at``."""
    return {
        "type": "object",
        "required": ["kind", "phone_number_id", "to", "duration_s"],
        "properties": {
            "kind": {"type": "string", "enum": ["call"]},
            "phone_number_id": {"type": "string", "pattern": waba_pattern},
            "waba_id": {"type": "string", "pattern": waba_pattern},
            "to": {
                "type": "string",
                "pattern": CALLEE_PATTERN,
                "description": "The callee of a business-initiated call (the caller of a "
                "user-initiated one): a phone number or a business-scoped user id.",
                "example": "+995591234567",
            },
            "duration_s": {"type": "integer", "minimum": 0, "maximum": 7 * 86_400},
            "direction": {
                "type": "string",
                "enum": ["business_initiated", "user_initiated"],
                "default": "business_initiated",
            },
            "at": {
                **time,
                "description": "When the call ends (ISO 8601 with a zone); absent: now.",
            },
        },
        "additionalProperties": True,
    }

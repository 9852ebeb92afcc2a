"""``GET /v1/openapi.json``: the OpenAPI 3.0 document of the query API (public, no secrets).

The document describes the handlers in :mod:`processor.web.api` as they are: the same query
parameters and limits, the bearer token (or HTTP basic with the token as password), and the
shapes of the answers. It is built from constants only: no setting, token or URL goes in.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from processor.web import openapi_money
from processor.web.api import MAX_LIMIT
from processor.web.openapi_parts import (
    JSON,
    MONTH_PATTERN,
    USER_PATTERN,
    WABA_PATTERN,
    Schema,
)
from processor.web.openapi_parts import enum as _enum
from processor.web.openapi_parts import json_ok as _json_ok
from processor.web.openapi_parts import money as _money
from processor.web.openapi_parts import nullable as _nullable
from processor.web.openapi_parts import obj as _object
from processor.web.openapi_parts import operation as _operation
from processor.web.openapi_parts import query as _query
from processor.web.openapi_parts import ref as _ref
from processor.web.openapi_parts import string as _str
from processor.web.openapi_parts import time as _time

bp = Blueprint("openapi", __name__)

PATH = "/v1/openapi.json"
GROUP_PATTERN = "^[A-Za-z0-9_.+/=-]{1,256}$"
CURSOR_MAX = 2**63
FREE_REASONS = ["free_tier", "free_entry_point", "free_customer_service", "free_service"]
FREE_REASONS += ["free_user_initiated"]  # calls (rule book 8.4)
NDJSON = "application/x-ndjson"


@bp.get(PATH)
def openapi_json() -> Response:
    """The document, served to anyone: it lists paths and shapes, never a value of the ledger."""
    return jsonify(document())


def document() -> Schema:
    """The OpenAPI document of ``/v1/*``."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "wa-billing query API",
            "version": "1",
            "description": (
                "Usage, billable-conversation records, quarantine, pending messages and "
                "discrepancies computed from Meta's WhatsApp webhooks. Every operation needs "
                "`Authorization: Bearer <API_TOKEN>` (or HTTP basic auth, any user name, the "
                "token as password). Money is an exact decimal string."
            ),
        },
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "basicAuth": {"type": "http", "scheme": "basic"},
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }


# -- paths ---------------------------------------------------------------------------------------


def _paths() -> Schema:
    waba_month = [_waba_id(required=True), _month()]
    records_ok = {
        "description": "A page of records, or every record as JSON Lines.",
        "content": {JSON: {"schema": _ref("RecordsPage")}, NDJSON: {"schema": {"type": "string"}}},
    }
    return {
        "/v1/usage": _operation(
            "get",
            "usage",
            "Units and money per category x market x billable/free reason for one WABA-month.",
            _json_ok("Usage"),
            waba_month,
        ),
        "/v1/records": _operation(
            "get",
            "records",
            "The month's records (latest version of each): a page of JSON, or every record as "
            "JSON Lines with `format=jsonl` (then `cursor` and `limit` are not read).",
            records_ok,
            [
                *waba_month,
                _query(
                    "format",
                    {"type": "string", "enum": ["json", "jsonl"], "default": "json"},
                    "`json`: one page; `jsonl`: every record, one JSON object a line.",
                ),
                _integer("cursor", 0, CURSOR_MAX, 0, "`next_cursor` of the previous page."),
                _integer("limit", 1, MAX_LIMIT, 100, "About how many records a page holds."),
            ],
        ),
        "/v1/quarantine": _operation(
            "get",
            "quarantine",
            "Quarantined bodies and events with their reasons, newest first.",
            _json_ok("QuarantinePage"),
            [
                _integer("limit", 1, MAX_LIMIT, 100, "Items per page."),
                _query(
                    "before",
                    {"type": "string", "pattern": "^(?!0+-0+$)[0-9]{1,19}-[0-9]{1,19}$"},
                    "`next` of the previous page: items older than this id.",
                ),
            ],
        ),
        "/v1/pending": _operation(
            "get",
            "pending",
            "Delivered messages whose category is not known yet (not charged, not guessed).",
            _json_ok("PendingList"),
            [_waba_id(required=False)],
        ),
        "/v1/quote": _operation(
            "post",
            "quote",
            "What delivering one message would cost now (or at `at`), from the stored state; it "
            "changes nothing. 400 when the phone number is unknown and no `waba_id` is given, "
            "or the category does not fit `template`.",
            _json_ok("Quote"),
            body="QuoteRequest",
        ),
        "/v1/discrepancies": _operation(
            "get",
            "discrepancies",
            "Records where Meta's classification and the window model disagree (Meta's kept).",
            _json_ok("DiscrepancyList"),
            waba_month,
        ),
        **_reconciliation_paths(waba_month),
        **openapi_money.paths(),
    }


def _integer(name: str, low: int, high: int, default: int, description: str) -> Schema:
    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    return _query(name, schema, description)


def _waba_id(required: bool) -> Schema:
    if required:
        schema = {"type": "string", "pattern": WABA_PATTERN, "example": "310000000000001"}
        return _query("waba_id", schema, "The WhatsApp Business Account id.", required=True)
    schema = {"type": "string", "pattern": "^([0-9]{1,32})?$", "example": "310000000000001"}
    return _query("waba_id", schema, "Only this WABA (absent or empty: every WABA).")


def _month() -> Schema:
    schema = {"type": "string", "pattern": MONTH_PATTERN, "example": "2025-11"}
    return _query("month", schema, "Billing month in the WABA's time zone.", required=True)


# -- components ----------------------------------------------------------------------------------


def _responses() -> Schema:
    return {
        "BadRequest": {
            "description": "A query parameter is missing or malformed.",
            "content": {JSON: {"schema": _ref("Error")}},
        },
        "Unauthorized": {
            "description": "No token, or not the right one.",
            "headers": {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True},
            },
            "content": {JSON: {"schema": _ref("Error")}},
        },
    }


def _schemas() -> Schema:
    return {
        "Error": _object(error=_str(), detail=_str()),
        "Usage": _usage(),
        "UsageLine": _with_minutes(
            category=_str(),
            market=_str(),
            billable={"type": "boolean"},
            free_reason=_nullable(_enum(FREE_REASONS)),
            currency=_str(),
            count={"type": "integer", "minimum": 1},
            cost=_money(),
            billed_cost=_money(),
        ),
        "Record": _record(),
        "RecordsPage": _object(
            waba_id=_str(WABA_PATTERN),
            month=_str(MONTH_PATTERN),
            records={"type": "array", "items": _ref("Record")},
            next_cursor=_nullable({"type": "integer", "minimum": 1}),
            total={"type": "integer", "minimum": 0},
        ),
        "QuarantineItem": _quarantine_item(),
        "QuarantinePage": _object(
            items={"type": "array", "items": _ref("QuarantineItem")},
            next=_nullable(_str("^[0-9]+-[0-9]+$")),
            total={"type": "integer", "minimum": 0},
        ),
        "PendingItem": _object(
            waba_id=_str(WABA_PATTERN),
            phone_number_id=_str(),
            user_id=_str(),
            wamid=_str(),
            charge_time=_time(),
            reason=_str(),
        ),
        "PendingList": _object(
            items={"type": "array", "items": _ref("PendingItem")},
            total={"type": "integer", "minimum": 0},
        ),
        "QuoteRequest": _quote_request(),
        "Quote": _quote(),
        "DiscrepancyList": _object(
            waba_id=_str(WABA_PATTERN),
            month=_str(MONTH_PATTERN),
            items={"type": "array", "items": _ref("Record")},
            total={"type": "integer", "minimum": 0},
        ),
        **_reconciliation_schemas(),
        **openapi_money.schemas(),
    }


def _usage() -> Schema:
    return _object(
        waba_id=_str(WABA_PATTERN),
        month=_str(MONTH_PATTERN),
        currency={"type": "string", "description": "The month's currency, or `mixed`."},
        total_cost=_nullable({**_money(), "description": "The sum of the records, to the last "
                              "digit; null in a month with two currencies (see totals)."}),
        total_billed_cost=_nullable(_money()),
        units={"type": "integer", "minimum": 0},
        unrated_units={"type": "integer", "minimum": 0},
        lines={"type": "array", "items": _ref("UsageLine")},
        totals={
            "type": "object",
            "description": "Per currency (a WABA's currency can change on a date).",
            "additionalProperties": _object(
                cost=_money(), billed_cost=_money(),
                units={"type": "integer", "minimum": 0},
                unrated_units={"type": "integer", "minimum": 0},
            ),
        },
        unrated={
            "type": "array",
            "description": "Billable units the rate card has no price for.",
            "items": _object(category=_str(), market=_str(), currency=_str(),
                             count={"type": "integer", "minimum": 1}),
        },
    )  # fmt: skip


def _record() -> Schema:
    """One charge unit (latest version); see the README's table of the records."""
    from processor.web.openapi_calls import call_fields

    out = _unit_record()
    out["properties"].update(call_fields(quote=False))
    out["properties"]["group_id"] = {
        "type": "string",
        "description": "Group deliveries only: the group; `user_id` is the participant.",
    }
    return out


def _with_minutes(**properties: Schema) -> Schema:
    out = _object(**properties)
    out["properties"]["minutes"] = {**_money(), "description": "Call lines: billed minutes."}
    return out


def _unit_record() -> Schema:
    return _object(
        record_id=_str(),
        version={"type": "integer", "minimum": 1},
        waba_id=_str(WABA_PATTERN),
        phone_number_id=_str(),
        user_id=_str(),
        country=_nullable(_str()),
        country_source=_enum(["phone", "bsuid", "unknown"]),
        market=_str(),
        category=_str(),
        kind=_enum(["conversation", "message", "call"]),
        pricing_model=_enum(["CBP", "PMP"]),
        policy=_str(),
        charge_time=_time(),
        expires_at=_nullable(_time()),
        billing_month=_str(MONTH_PATTERN),
        billable={"type": "boolean"},
        free_reason=_nullable(_enum(FREE_REASONS)),
        rate=_nullable(_money()),
        billed_rate=_nullable(_money()),
        tier=_nullable(_str()),
        currency=_str(),
        cost=_nullable(_money()),
        billed_cost=_nullable(_money()),
        source=_enum(["meta", "derived"]),
        discrepancy=_nullable(_str()),
        meta_conversation_id=_nullable(_str()),
        wamid=_nullable(_str()),  # null for a call
        void={"type": "boolean"},
        estimate=_nullable(_enum(["upper_bound"])),
        pricing_subtype=_nullable(_str()),
    )


def _quote_request() -> Schema:
    from processor.web.openapi_calls import call_quote_request

    return {"anyOf": [_message_quote_request(), call_quote_request(_time(), WABA_PATTERN)]}


def _message_quote_request() -> Schema:
    body = _object(
        phone_number_id=_str(WABA_PATTERN),
        user_id=_str(USER_PATTERN),
        category={
            "type": "string",
            "pattern": "^[a-z_-]{1,40}$",
            "description": "A template category, or `service` with `template: false`.",
            "example": "marketing",
        },
    )
    body["properties"].update(
        waba_id=_str(WABA_PATTERN),
        template={"type": "boolean", "default": True},
        at={**_time(), "description": "ISO 8601 with a zone; absent: now."},
        group_id={**_str(GROUP_PATTERN), "description": "A message to this group."},
        participants={
            "type": "array",
            "items": _str(USER_PATTERN),
            "minItems": 1,
            "maxItems": 8,
            "uniqueItems": True,
            "description": "A message to a group: the members it reaches (default with "
            "`group_id`: those its deliveries so far named). `user_id` is then not needed.",
        },
        kind=_enum(["message"]),
    )
    body["required"] = ["phone_number_id", "category"]  # user_id, or a group's participants
    body["additionalProperties"] = True
    return body


def _quote() -> Schema:
    """Always the first six fields; the unit's fields when the message (or call) opens one."""
    out = _object(
        allowed={"type": "boolean"},
        opens_charge={"type": "boolean"},
        reason=_str(),
        joins_record_id=_nullable(_str()),
        at=_time(),
        affects_record_ids={"type": "array", "items": _str()},
        billable={"type": "boolean"},
        cost=_nullable(_money()),
    )
    out["properties"].update(
        kind=_enum(["conversation", "message", "call"]),
        category=_str(),
        policy=_str(),
        pricing_model=_enum(["CBP", "PMP"]),
        billing_month=_str(MONTH_PATTERN),
        country=_nullable(_str()),
        market=_str(),
        currency=_str(),
        free_reason=_nullable(_enum(FREE_REASONS)),
        rate=_nullable(_money()),
        billed_rate=_nullable(_money()),
        tier=_nullable(_str()),
        billed_cost=_nullable(_money()),
        allowance=_object(
            limit={"type": "integer"}, used={"type": "integer"}, left={"type": "integer"}
        ),
        volume=_object(position={"type": "integer"}, tier=_nullable(_str())),
        over_budget={"type": "boolean", "nullable": True},
    )
    one = {**out, "properties": {**out["properties"], "user_id": _str(USER_PATTERN)}}
    del one["properties"]["over_budget"]
    out["properties"].update(
        group_id=_nullable(_str(GROUP_PATTERN)),
        participants={
            "type": "array",
            "items": {**one, "required": ["user_id", *out["required"]]},
            "description": "A group send: one quote per participant (its own market); "
            "`cost` and `billed_cost` are their sums.",
        },
    )
    from processor.web.openapi_calls import call_fields

    out["properties"].update(call_fields(quote=True))
    return out


def _quarantine_item() -> Schema:
    item = _object(id=_str("^[0-9]+-[0-9]+$"), reason=_str(), at=_str("^[0-9]+$"))
    item["properties"].update(
        body_id=_str("^[0-9]+-[0-9]+$"),
        path={"type": "string", "description": "Where in the body, e.g. `entry[0]...`."},
        item={"type": "string", "description": "The item as JSON, message text redacted."},
        wamid=_str(),
    )
    item["additionalProperties"] = {"type": "string"}
    return item


def _reconciliation_paths(waba_month: list[Schema]) -> Schema:
    from processor.web.openapi_reconciliation import reconciliation_paths

    return reconciliation_paths(waba_month)


def _reconciliation_schemas() -> Schema:
    from processor.web.openapi_reconciliation import reconciliation_schemas

    return reconciliation_schemas()

"""The OpenAPI parts of ``/v1/reconciliation`` and ``/v1/templates`` (see openapi.py)."""

from __future__ import annotations

from processor.core.reconcile import MONTH_PATTERN
from processor.web.openapi import _waba_id
from processor.web.openapi_parts import JSON, WABA_PATTERN, Schema
from processor.web.openapi_parts import MONTH_PATTERN as ANY_MONTH
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


def reconciliation_paths(waba_month: list[Schema]) -> Schema:
    refresh = _query(
        "refresh",
        {"type": "string", "enum": ["0", "1"], "default": "0"},
        "`1`: ask Meta's Graph API again (and store the new result) before answering.",
    )
    month = _query(
        "month",
        {"type": "string", "pattern": f"^{MONTH_PATTERN}$", "example": "2025-11"},
        "Billing month in the WABA's time zone (years 1970 to 9998).",
        required=True,
    )
    recon = _operation(
        "get",
        "reconciliation",
        "Our figures beside Meta's `pricing_analytics`, line by line (day, number, country, "
        "category, pricing type): the last stored result, or a new one with `refresh=1`. 404 "
        "when none is stored; 502 with Meta's `message` and `fbtrace_id` when Meta could not "
        "be asked.",
        _json_ok("Reconciliation"),
        [waba_month[0], month, refresh],
    )
    responses = recon["get"]["responses"]
    responses["404"] = {
        "description": "No reconciliation stored for this WABA and month.",
        "content": {JSON: {"schema": _ref("Error")}},
    }
    responses["502"] = {
        "description": "Meta could not be asked (its error message and trace id).",
        "content": {JSON: {"schema": _ref("MetaError")}},
    }
    templates = _operation(
        "get",
        "templates",
        "The template registry kept from Meta's template webhooks, with category history.",
        _json_ok("TemplateList"),
        [_waba_id(required=False)],
    )
    return {"/v1/reconciliation": recon, "/v1/templates": templates}


def reconciliation_schemas() -> Schema:
    count = {"type": "integer", "minimum": 0}
    statuses = ["match", "volume_diff", "cost_diff", "only_meta", "only_ours", "cost_unavailable"]
    line = _object(
        day=_str("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        phone_number_id=_nullable(_str()),
        display_phone_number=_nullable(_str()),
        country=_nullable(_str()),
        category=_nullable(_str()),
        pricing_type=_nullable(_str()),
        ours_volume=count,
        meta_volume=count,
        ours_cost=_nullable(_money()),
        meta_cost=_nullable(_money()),
        status=_enum(statuses),
        provisional={"type": "boolean", "description": "The day ended less than 48 h ago."},
    )
    tier_update = {"type": "object", "additionalProperties": True}
    tier = _object(
        market=_str(),
        category=_str(),
        meta_tier=_nullable(_str()),
        ours_tier=_nullable(_str()),
        tier_updates={"type": "array", "items": tier_update},
    )
    history = {"type": "object", "additionalProperties": True}
    template = _object(
        template_id=_str("^[0-9]{1,32}$"),
        waba_id=_str(WABA_PATTERN),
        name=_nullable(_str()),
        language=_nullable(_str()),
        category=_nullable(_str()),
        status=_nullable(_str()),
        updated_at=_nullable({"type": "integer"}),
        history={"type": "array", "items": history},
    )
    return {
        "ReconciliationLine": line,
        "ReconciliationTier": tier,
        "Reconciliation": _object(
            waba_id=_str(WABA_PATTERN),
            month=_str(ANY_MONTH),
            currency=_str(),
            fetched_at=_time(),
            totals=_object(
                ours_volume=count,
                meta_volume=count,
                ours_cost=_nullable(_money()),
                meta_cost=_nullable(_money()),
            ),
            lines={"type": "array", "items": _ref("ReconciliationLine")},
            tiers={"type": "array", "items": _ref("ReconciliationTier")},
        ),
        "MetaError": _object(
            error=_str(), detail=_str(), message=_str(), fbtrace_id=_nullable(_str())
        ),
        "Template": template,
        "TemplateList": _object(
            items={"type": "array", "items": _ref("Template")},
            total=count,
        ),
    }

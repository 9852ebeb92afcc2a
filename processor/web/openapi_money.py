"""The OpenAPI paths and schemas of budgets, alerts and campaign quotes (see money_api.py);
merged into the document by :mod:`processor.web.openapi`."""

from __future__ import annotations

from processor.store.campaign import MAX_RECIPIENTS
from processor.web.openapi_parts import (
    MONTH_PATTERN,
    USER_PATTERN,
    WABA_PATTERN,
    Schema,
    json_ok,
    operation,
)
from processor.web.openapi_parts import count as _count
from processor.web.openapi_parts import money as _money
from processor.web.openapi_parts import obj as _object
from processor.web.openapi_parts import query as _query
from processor.web.openapi_parts import ref as _ref
from processor.web.openapi_parts import string as _str

AMOUNT_PATTERN = "^[0-9]{1,15}(\\.[0-9]{1,10})?$"
ALERT_STATES = ["pending", "sent", "failed"]


def paths() -> Schema:
    waba_path = {
        "name": "waba_id",
        "in": "path",
        "required": True,
        "description": "The WhatsApp Business Account id.",
        "schema": {"type": "string", "pattern": WABA_PATTERN, "example": "310000000000001"},
    }
    month = _query(
        "month",
        {"type": "string", "pattern": "^([0-9]{4}-(0[1-9]|1[0-2]))?$"},
        "Billing month (default: the current month in the WABA's time zone).",
    )
    return {
        "/v1/budgets/{waba_id}": {
            **_op(
                "get",
                "getBudget",
                "The WABA's monthly budget (override, budgets.csv row, `*` row, or none) and how "
                "much of the month's billed cost it has used.",
                "BudgetStatus",
                [waba_path, month],
            ),
            **_op(
                "put",
                "putBudget",
                "Set the WABA's budget (stored in Redis, wins over budgets.csv). 400 when the "
                "currency is not the WABA's or the thresholds are not increasing.",
                "BudgetStatus",
                [waba_path, month],
                body="BudgetRequest",
            ),
        },
        "/v1/alerts": _op(
            "get",
            "alerts",
            "Alerts (budget thresholds crossed, ...), newest first, with their delivery state.",
            "AlertList",
            [
                _query("kind", {"type": "string", "pattern": "^[a-z_]{1,40}$"}, "Only this kind."),
                _query("state", {"type": "string", "enum": ALERT_STATES}, "Only this state."),
                _query("waba_id", {"type": "string", "pattern": WABA_PATTERN}, "Only this WABA."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "At most this many.",
                ),
            ],
        ),
        "/v1/quote/campaign": _op(
            "post",
            "quoteCampaign",
            "What sending one message to each recipient, in order, would cost now (or at `at`): "
            "per market the sends that open a charge, their rates and tiers, the allowance "
            "and tier effects of the whole batch, and the total in the WABA's currency. "
            "Changes nothing.",
            "CampaignQuote",
            body="CampaignRequest",
        ),
    }


def schemas() -> Schema:
    return {
        "Budget": _budget(),
        "BudgetRequest": _budget_request(),
        "BudgetStatus": _object(
            waba_id=_str(WABA_PATTERN),
            month=_str(MONTH_PATTERN),
            source={"type": "string", "enum": ["override", "file", "default", "none"]},
            budget={**_budget(), "nullable": True},
            billed_cost={**_money(), "nullable": True},
            currency={"type": "string", "nullable": True},
            used_ratio={**_money(), "nullable": True},
            thresholds_crossed={"type": "array", "items": {"type": "integer"}},
        ),
        "Alert": _alert(),
        "AlertList": _object(
            items={"type": "array", "items": _ref("Alert")},
            total={"type": "integer", "minimum": 0},
        ),
        "CampaignRequest": _campaign_request(),
        "CampaignQuote": _campaign_quote(),
        "CampaignMarket": _object(
            market=_str(),
            recipients=_count(),
            allowed=_count(),
            opens_charge=_count(),
            billable=_count(),
            unrated=_count(),
            free={"type": "object", "additionalProperties": {"type": "integer"}},
            reasons={"type": "object", "additionalProperties": {"type": "integer"}},
            rates={
                "type": "array",
                "items": _object(
                    tier={"type": "string", "nullable": True},
                    rate=_money(),
                    billed_rate=_money(),
                    count=_count(),
                    cost=_money(),
                    billed_cost=_money(),
                ),
            },
            cost=_money(),
            billed_cost=_money(),
        ),
    }


def _budget() -> Schema:
    return _object(
        waba_id=_str(),
        monthly_budget=_money(),
        currency=_str("^[A-Z]{3}$"),
        thresholds={"type": "array", "items": {"type": "integer"}},
    )


def _budget_request() -> Schema:
    body = _object(monthly_budget={**_str(AMOUNT_PATTERN), "example": "500.00"}, currency=_str())
    body["properties"]["currency"] = {"type": "string", "pattern": "^[A-Z]{3}$", "example": "USD"}
    body["properties"]["thresholds"] = {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 1000},
        "minItems": 1,
        "default": [50, 80, 100],
        "description": "Percentages of the budget, strictly increasing.",
    }
    body["additionalProperties"] = True
    return body


def _alert() -> Schema:
    alert = _object(
        id=_str(),
        kind=_str(),
        waba_id={"type": "string", "nullable": True},
        created_at={"type": "integer", "description": "Unix milliseconds."},
        data={"type": "object"},
        delivery={
            "type": "object",
            "required": ["state", "attempts", "last_error"],
            "properties": {
                "state": {"type": "string", "enum": ALERT_STATES},
                "attempts": _count(),
                "last_error": {"type": "string", "nullable": True},
            },
        },
    )
    return alert


def _campaign_request() -> Schema:
    body = _object(
        phone_number_id=_str(WABA_PATTERN),
        category={"type": "string", "pattern": "^[a-z_-]{1,40}$", "example": "marketing"},
        recipients={
            "type": "array",
            "items": _str(USER_PATTERN),
            "minItems": 1,
            "maxItems": MAX_RECIPIENTS,
            "uniqueItems": True,
        },
    )
    body["properties"].update(
        waba_id=_str(WABA_PATTERN),
        template={"type": "boolean", "default": True},
        at={"type": "string", "format": "date-time", "description": "ISO 8601; absent: now."},
    )
    body["additionalProperties"] = True
    return body


def _campaign_quote() -> Schema:
    bucket = {
        "type": "object",
        "required": ["bucket", "before", "added", "after"],
        "properties": {
            "bucket": _str(),
            "before": _count(),
            "added": _count(),
            "after": _count(),
            "limit": _count(),
            "free_left_after": _count(),
            "tiers": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
        "additionalProperties": {"type": "string"},
    }
    return _object(
        waba_id=_str(WABA_PATTERN),
        phone_number_id=_str(WABA_PATTERN),
        category=_str(),
        template={"type": "boolean"},
        at={"type": "string", "format": "date-time"},
        billing_month=_str(MONTH_PATTERN),
        currency=_str(),
        recipients=_count(),
        allowed=_count(),
        opens_charge=_count(),
        billable=_count(),
        unrated=_count(),
        total_cost=_money(),
        total_billed_cost=_money(),
        markets={"type": "array", "items": _ref("CampaignMarket")},
        buckets={"type": "array", "items": bucket},
        over_budget={"type": "boolean", "nullable": True},
    )


def _op(
    method: str,
    name: str,
    summary: str,
    schema: str,
    parameters: list[Schema] | None = None,
    body: str | None = None,
) -> Schema:
    return operation(method, name, summary, json_ok(schema), parameters, body)

"""``/v1``: budgets, alerts and campaign quotes (bearer token, like the rest of the API)."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from processor.context import Context
from processor.core.budget import Budget, budget_from
from processor.core.parse import load_json_object
from processor.errors import BadPayload
from processor.store.alerts import Alerts
from processor.store.budgets import Budgets
from processor.store.campaign import MAX_RECIPIENTS, Campaign, CampaignQuoter
from processor.web.api import CATEGORY, MONTH, USER, WABA, _field, _int, _moment
from processor.web.auth import context, require_token

bp = Blueprint("money", __name__, url_prefix="/v1")
ALERT_STATES = ("pending", "sent", "failed")
KIND = re.compile(r"[a-z_]{1,40}")


_ctx = context


def budgets(ctx: Context) -> Budgets:
    return Budgets(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.budget_file)


require_token(bp)


def _body() -> dict[str, Any]:
    try:
        return load_json_object(request.get_data(), _ctx().settings.max_json_depth)
    except BadPayload as exc:
        abort(400, f"the body must be a JSON object: {exc}")


def _waba(waba_id: str) -> str:
    if not WABA.fullmatch(waba_id):
        abort(400, "waba_id must be 1 to 32 digits")
    return waba_id


def _month_or_now(waba_id: str) -> str:
    month = request.args.get("month")
    if month is None or month == "":
        return budgets(_ctx()).month_now(waba_id, int(time.time()))
    if not MONTH.fullmatch(month):
        abort(400, "query parameter 'month' is malformed")
    return month


# -- budgets -------------------------------------------------------------------------------------


@bp.get("/budgets/<waba_id>")
def get_budget(waba_id: str) -> Response:
    """The WABA's budget, where it comes from, and how much of the month it has used."""
    waba = _waba(waba_id)
    return jsonify(budgets(_ctx()).status(waba, _month_or_now(waba)))


@bp.put("/budgets/<waba_id>")
def put_budget(waba_id: str) -> Response:
    """Set the WABA's budget (an override in Redis that wins over budgets.csv)."""
    ctx, waba = _ctx(), _waba(waba_id)
    budget = _budget(waba, _body())
    currency = ctx.ratebook.waba(waba).currency
    if budget.currency != currency:
        abort(400, f"currency must be the WABA's billing currency ({currency})")
    store = budgets(ctx)
    store.put(budget)
    month = _month_or_now(waba)
    store.check(waba, month)  # a lower budget may be crossed already
    return jsonify(store.status(waba, month))


def _budget(waba: str, body: dict[str, Any]) -> Budget:
    amount, currency, thresholds = (
        body.get("monthly_budget"),
        body.get("currency"),
        body.get("thresholds", [50, 80, 100]),
    )
    if isinstance(thresholds, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in thresholds
    ):
        thresholds = ";".join(str(t) for t in thresholds)
    if not isinstance(amount, str) or not isinstance(currency, str):
        abort(400, "'monthly_budget' (a decimal string) and 'currency' are required")
    if not isinstance(thresholds, str):
        abort(400, "'thresholds' must be a list of percentages or a string like '50;80;100'")
    try:
        return budget_from(waba, amount, currency, thresholds)
    except ValueError as exc:
        abort(400, str(exc))


# -- alerts --------------------------------------------------------------------------------------


@bp.get("/alerts")
def list_alerts() -> Response:
    """Alerts, newest first, with their delivery state."""
    kind = request.args.get("kind")
    state = request.args.get("state")
    waba = request.args.get("waba_id")
    if kind is not None and not KIND.fullmatch(kind):
        abort(400, "query parameter 'kind' is malformed")
    if state is not None and state not in ALERT_STATES:
        abort(400, f"query parameter 'state' must be one of {', '.join(ALERT_STATES)}")
    if waba is not None and not WABA.fullmatch(waba):
        abort(400, "query parameter 'waba_id' is malformed")
    limit = _int("limit", 100, 1, 1000)
    items = [
        a
        for a in Alerts(_ctx().redis, _ctx().keys).all()
        if (kind is None or a["kind"] == kind)
        and (state is None or a["delivery"]["state"] == state)
        and (waba is None or a.get("waba_id") == waba)
    ]
    return jsonify(items=items[:limit], total=len(items))


# -- campaign quotes -------------------------------------------------------------------------------


@bp.post("/quote/campaign")
def quote_campaign() -> Response:
    """What sending one message to every recipient, in order, would cost: changes nothing."""
    ctx = _ctx()
    body = _body()
    phone = _field(body, "phone_number_id", WABA)
    category = _field(body, "category", CATEGORY)
    template = body.get("template", True)
    if not isinstance(template, bool):
        abort(400, "'template' must be true or false")
    at = _moment(body.get("at"))
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        abort(400, f"'recipients' must be a list of 1 to {MAX_RECIPIENTS} user ids")
    for user in recipients:
        if not isinstance(user, str) or not USER.fullmatch(user):
            abort(400, "every recipient must be a WhatsApp user id (phone digits or BSUID)")
    waba = campaign_waba(ctx, phone, body.get("waba_id"))
    campaign = Campaign(waba, phone, category, template, at, tuple(recipients))
    try:
        return jsonify(run_campaign_quote(ctx, campaign))
    except ValueError as exc:
        abort(400, str(exc))


def campaign_waba(ctx: Context, phone: str, given: Any) -> str:
    if given is None:
        from processor.store.quoting import Quoter

        waba = Quoter(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book).waba_of(
            phone
        )
        if waba is None:
            abort(400, "unknown phone_number_id: give 'waba_id' too")
        return waba
    if not isinstance(given, str) or not WABA.fullmatch(given):
        abort(400, "'waba_id' is malformed")
    return given


def run_campaign_quote(ctx: Context, campaign: Campaign) -> dict[str, Any]:
    """The campaign quote with ``over_budget`` (also used by ``wa-billing quote``)."""
    quoter = CampaignQuoter(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book)
    out = quoter.quote(campaign)
    extra = Decimal(out["total_billed_cost"])
    out["over_budget"] = budgets(ctx).over_budget(campaign.waba_id, out["billing_month"], extra)
    return out


def over_budget(ctx: Context, waba: str, answer: dict[str, Any]) -> bool | None:
    """A single quote's ``over_budget``: would its billed cost take the month past the budget."""
    month = answer.get("billing_month") or budgets(ctx).month_now(waba, int(time.time()))
    extra = Decimal(answer.get("billed_cost") or answer.get("cost") or "0")
    return budgets(ctx).over_budget(waba, month, extra)

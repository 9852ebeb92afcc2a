"""``POST /v1/quote`` with ``"kind": "call"``: what a call of ``duration_s`` seconds to ``to``
would cost if it ended at ``at`` (absent: now). Reads state, changes nothing."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, abort, jsonify

from processor.context import Context
from processor.core.parse import MAX_TIME, MIN_TIME
from processor.web.api import USER, WABA, _field, _moment

DIRECTIONS = ("business_initiated", "user_initiated")
PHONE = re.compile(r"\+?([0-9]{4,20})")
LONGEST_CALL_S = 7 * 86_400


def call_quote(ctx: Context, body: dict[str, Any]) -> Response:
    from processor.store.call_quoting import quote_call
    from processor.store.quoting import Quoter
    from processor.web.money_api import over_budget

    phone = _field(body, "phone_number_id", WABA)
    user = _callee(body)
    seconds = body.get("duration_s")
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        abort(400, "'duration_s' must be a whole number of seconds")
    if not 0 <= seconds <= LONGEST_CALL_S:
        abort(400, f"'duration_s' must be from 0 to {LONGEST_CALL_S}")
    direction = body.get("direction", DIRECTIONS[0])
    if direction not in DIRECTIONS:
        abort(400, f"'direction' must be one of {', '.join(DIRECTIONS)}")
    at = _moment(body.get("at"))
    if not MIN_TIME <= at < MAX_TIME:
        abort(400, "'at' must be between 2000 and 2100")
    waba = body.get("waba_id")
    if waba is None:
        waba = Quoter(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book).waba_of(
            phone
        )
        if waba is None:
            abort(400, "unknown phone_number_id: give 'waba_id' too")
    elif not isinstance(waba, str) or not WABA.fullmatch(waba):
        abort(400, "'waba_id' is malformed")
    answer = quote_call(
        ctx.ledger_redis,
        ctx.ledger_keys,
        ctx.ratebook,
        ctx.ledger.book,
        (waba, phone, user),
        seconds,
        direction,
        at,
    )
    answer["over_budget"] = over_budget(ctx, waba, answer)
    return jsonify(answer)


def _callee(body: dict[str, Any]) -> str:
    """``to``: a phone number (``+`` allowed) or a business-scoped user id."""
    raw = body.get("to")
    if isinstance(raw, str) and USER.fullmatch(raw):
        return raw
    found = PHONE.fullmatch(raw) if isinstance(raw, str) else None
    if found is None:
        abort(400, "'to' is missing or not a phone number or business-scoped user id")
    return found.group(1)

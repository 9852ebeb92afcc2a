"""``/v1``: usage, records, quarantine, pending messages, discrepancies (bearer token)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
from flask import Blueprint, Response, abort, jsonify, request, stream_with_context

from processor.core.groups import GROUP_ID
from processor.core.parse import load_json_object
from processor.errors import BadPayload
from processor.web.auth import context, require_token

bp = Blueprint("api", __name__, url_prefix="/v1")
USER = re.compile(r"[0-9]{4,20}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
CATEGORY = re.compile(r"[a-z_-]{1,40}")
MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
WABA = re.compile(r"[0-9]{1,32}")
MAX_LIMIT = 1000
MAX_PARTICIPANTS = 8  # a group's members besides the business (rule book 7.1)


_ctx = context


require_token(bp)


def _arg(name: str, pattern: re.Pattern[str], required: bool = True) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        if required:
            abort(400, f"query parameter '{name}' is required")
        return None
    if not pattern.fullmatch(value):
        abort(400, f"query parameter '{name}' is malformed")
    return value


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,20}", raw) or not low <= int(raw) <= high:
        abort(400, f"query parameter '{name}' must be an integer from {low} to {high}")
    return int(raw)


def _waba_month() -> tuple[str, str]:
    waba = _arg("waba_id", WABA)
    month = _arg("month", MONTH)
    assert waba is not None and month is not None
    return waba, month


@bp.get("/usage")
def usage() -> Response:
    """Units and money per category x market x billable/free reason for one WABA-month."""
    ctx = _ctx()
    waba, month = _waba_month()
    currency = ctx.ratebook.waba(waba).currency
    return jsonify(ctx.queries.usage(waba, month, currency))


@bp.get("/records")
def records() -> Response:
    """The month's records: pages of JSON, or every record as JSON Lines (``format=jsonl``)."""
    ctx = _ctx()
    waba, month = _waba_month()
    fmt = request.args.get("format", "json")
    cursor = _int("cursor", 0, 0, 2**63)
    limit = _int("limit", 100, 1, MAX_LIMIT)
    import psycopg  # only here: the app starts without it

    from processor.sinks.archive import from_redis_or_postgres

    source: Any = from_redis_or_postgres(ctx, waba, month) or ctx.queries  # older: PostgreSQL
    if fmt == "jsonl":
        lines = (json.dumps(r) + "\n" for r in source.records(waba, month))
        return Response(stream_with_context(_chunks(lines)), mimetype="application/x-ndjson")
    if fmt != "json":
        abort(400, "format must be json or jsonl")
    try:
        page, following = source.records_page(waba, month, cursor, limit)
        total = source.record_count(waba, month)
    except psycopg.Error as exc:  # PostgreSQL (older months) is away
        abort(503, f"the records archive is unavailable ({exc.__class__.__name__})")
    return jsonify(
        waba_id=waba, month=month, records=page, next_cursor=following or None, total=total
    )


def _chunks(lines: Iterator[str]) -> Iterator[str]:
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= 200:
            yield "".join(buffer)
            buffer = []
    if buffer:
        yield "".join(buffer)


@bp.get("/quarantine")
def quarantine() -> Response:
    """Quarantined bodies and events with their reasons, newest first."""
    before = request.args.get("before")
    if before is not None and not re.fullmatch(r"[0-9]{1,19}-[0-9]{1,19}", before):
        abort(400, "query parameter 'before' is malformed")
    limit = _int("limit", 100, 1, MAX_LIMIT)
    try:
        return jsonify(_ctx().quarantine.list(limit, before))
    except redis.ResponseError:  # an id Redis refuses (e.g. 0-0 as an exclusive bound)
        abort(400, "query parameter 'before' is not a quarantine id")


@bp.get("/pending")
def pending() -> Response:
    """Delivered messages whose category is not known yet (not charged, not guessed)."""
    waba = _arg("waba_id", WABA, required=False)
    items = _ctx().queries.pending(waba)
    return jsonify(items=items, total=len(items))


@bp.post("/quote")
def quote() -> Response:
    """What delivering one message would cost: reads state, changes nothing."""
    from processor.store.quoting import Quoter

    ctx = _ctx()
    try:
        body = load_json_object(request.get_data(), ctx.settings.max_json_depth)
    except BadPayload as exc:
        abort(400, f"the body must be a JSON object: {exc}")
    if body.get("kind") == "call":  # a call of a given length (rule book 8.1)
        from processor.web.call_quote import call_quote

        return call_quote(ctx, body)
    phone = _field(body, "phone_number_id", WABA)
    group = "participants" in body or "group_id" in body  # a message to a group
    user = _field(body, "user_id", USER) if "user_id" in body or not group else ""
    category = _field(body, "category", CATEGORY)
    template = body.get("template", True)
    if not isinstance(template, bool):
        abort(400, "'template' must be true or false")
    at = _moment(body.get("at"))
    quoter = Quoter(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book)
    waba = body.get("waba_id")
    if waba is None:
        waba = quoter.waba_of(phone)
        if waba is None:
            abort(400, "unknown phone_number_id: give 'waba_id' too")
    elif not isinstance(waba, str) or not WABA.fullmatch(waba):
        abort(400, "'waba_id' is malformed")
    try:
        if group:
            answer = _group_quote(quoter, body, waba, phone, category, template, at)
        else:
            answer = quoter.quote(waba, phone, user, category, template, at)
    except ValueError as exc:
        abort(400, str(exc))
    from processor.web.money_api import over_budget

    answer["over_budget"] = over_budget(ctx, waba, answer)
    return jsonify(answer)


def _group_quote(quoter: Any, body: dict[str, Any], waba: str, phone: str, *what: Any) -> Any:
    """A message to a group (rule book 7): priced per participant of ``participants`` (their
    numbers or BSUIDs), or of those the group's deliveries so far named; ``group_id`` gives
    the group's window. ``what``: category, template, at."""
    group_id = body.get("group_id")
    if group_id is not None and (not isinstance(group_id, str) or not GROUP_ID.fullmatch(group_id)):
        abort(400, "'group_id' is malformed")
    participants = body.get("participants")
    if participants is None and group_id is not None:
        participants = quoter.participants(waba, phone, group_id)
    if (
        not isinstance(participants, list)
        or not 0 < len(participants) <= MAX_PARTICIPANTS
        or not all(isinstance(u, str) and USER.fullmatch(u) for u in participants)
        or len(set(participants)) != len(participants)
    ):
        abort(400, f"'participants' must list 1 to {MAX_PARTICIPANTS} distinct user ids")
    return quoter.quote_group(waba, phone, group_id, participants, *what)


def _field(body: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        abort(400, f"'{name}' is missing or malformed")
    return value


def _moment(raw: Any) -> int:
    """``at``: ISO 8601 with a zone, or absent for now."""
    if raw is None:
        return int(time.time())
    if not isinstance(raw, str):
        abort(400, "'at' must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        abort(400, "'at' must be an ISO 8601 time")
    if moment.tzinfo is None:
        abort(400, "'at' needs a time zone (e.g. Z)")
    return int(moment.timestamp())


@bp.get("/discrepancies")
def discrepancies() -> Response:
    """Records where Meta's classification and the window model disagree (Meta's kept)."""
    waba, month = _waba_month()
    items = _ctx().queries.discrepancies(waba, month)
    return jsonify(waba_id=waba, month=month, items=items, total=len(items))

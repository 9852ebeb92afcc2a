"""``/webhook``: Meta's verification handshake and its signed notifications.

A POST is answered 200 only once its raw body is in the Redis inbox; no billing work happens
here. The answer is 503 when Redis cannot be reached, so that Meta delivers it again.
"""

from __future__ import annotations

import contextlib
import hmac
import logging

import redis
from flask import Blueprint, Response, current_app, request

from processor.context import Context
from processor.core.account_events import wanted
from processor.core.parse import load_json_object
from processor.errors import BadPayload, BadSignature
from processor.web.signature import verify

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)
JSON_TYPES = ("application/json",)


def _ctx() -> Context:
    ctx: Context = current_app.extensions["wa_billing"]
    return ctx


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.get("/webhook")
def handshake() -> Response:
    """Echo ``hub.challenge`` when the mode is subscribe and the verify token matches."""
    args = request.args
    token = args.get("hub.verify_token", "")
    challenge = args.get("hub.challenge")
    expected = _ctx().settings.meta_verify_token
    if (
        args.get("hub.mode") == "subscribe"
        and challenge is not None
        and hmac.compare_digest(token.encode(), expected.encode())
    ):
        return _text(challenge, 200)
    return _text("forbidden", 403)


@bp.post("/webhook")
def receive() -> Response:
    ctx = _ctx()
    raw = request.get_data(cache=False)  # 413 above MAX_CONTENT_LENGTH, via Flask
    try:
        if ctx.settings.signature_required:
            verify(raw, request.headers.get("X-Hub-Signature-256"), ctx.settings.meta_app_secret)
    except BadSignature as exc:
        return _reject(ctx, "bad_signature", str(exc), 401)
    if request.mimetype not in JSON_TYPES:
        return _reject(ctx, "content_type", "Content-Type must be application/json", 415)
    try:
        doc = load_json_object(raw, ctx.settings.max_json_depth)
    except BadPayload as exc:
        return _reject(ctx, "bad_json", str(exc), 400)
    if not wanted(doc):
        _count(ctx, "webhooks_ignored")
        return _text("ignored", 200)
    try:
        _, ticket = ctx.inbox.push(raw, doc=doc)
    except redis.RedisError as exc:
        log.error("cannot store a webhook body, answering 503: %s", exc.__class__.__name__)
        return _text("store unavailable", 503)
    if ticket:
        _queue_drain(ctx)
    return _text("ok", 200)


def _queue_drain(ctx: Context) -> None:
    try:
        ctx.enqueue_drain()
    except redis.RedisError as exc:  # the body is stored; the janitor queues a job later
        log.warning("stored a body but could not queue a drain job: %s", exc.__class__.__name__)


def _reject(ctx: Context, reason: str, detail: str, status: int) -> Response:
    _count(ctx, f"webhooks_rejected:{reason}")
    log.info("rejected a webhook (%s): %s", reason, detail)
    return _text(detail, status)


def _count(ctx: Context, name: str) -> None:
    with contextlib.suppress(redis.RedisError):
        ctx.redis.hincrby(ctx.keys.stats, name, 1)

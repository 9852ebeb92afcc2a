"""``/webhook``: Meta's verification handshake and its signed notifications.

A POST is answered 200 only once its raw body is in the Redis inbox; no billing work happens
here. The answer is 503 when Redis cannot be reached, so that Meta delivers it again.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis
from flask import Blueprint, Response, request

from processor.context import Context
from processor.core.account_events import wanted
from processor.core.parse import load_json_object
from processor.errors import BadPayload, BadSignature
from processor.web.auth import context
from processor.web.signature import verify

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)
JSON_TYPES = ("application/json",)
FAST_HEADERS = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-Content-Type-Options", "nosniff"),  # as processor.web.headers sets on every answer
)
STATUS_LINES = {200: "200 OK", 503: "503 SERVICE UNAVAILABLE"}


_ctx = context


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
    return _text(*store(ctx, raw, doc))


def store(ctx: Context, raw: bytes, doc: dict[str, Any]) -> tuple[str, int]:
    """Put a signed, wanted body in the inbox (and queue a drain job when none is queued):
    the answer's text and status, 200 once it is stored, 503 when Redis cannot take it."""
    try:
        _, ticket = ctx.inbox.push(raw, doc=doc)
    except redis.RedisError as exc:
        log.error("cannot store a webhook body, answering 503: %s", exc.__class__.__name__)
        return "store unavailable", 503
    if ticket:
        _queue_drain(ctx)
    return "ok", 200


class FastPath:
    """WSGI middleware: a signed, wanted JSON POST to ``/webhook`` (Meta's every delivery) is
    answered here without Flask's request machinery, which costs more CPU than the work
    itself; anything else, and any body that is not accepted, goes to the Flask app with
    its bytes intact, which answers it as ever (401, 413, 415, 400, ignored...).

    The answer is the Flask route's, byte for byte: the same checks on the raw bytes, the
    same text and headers (tests/test_webhook.py compares the two paths). An app-wide
    ``after_request`` header added later must be added to ``FAST_HEADERS`` too."""

    def __init__(self, flask: WSGIApplication, ctx: Context) -> None:
        self.flask, self.ctx = flask, ctx

    def __call__(self, environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        raw = self._accepted(environ)
        if raw is None:
            return self.flask(environ, start)
        try:
            doc = self._checked(environ, raw)
        except Exception:  # any doubt: Flask answers, from the same bytes
            doc = None
        if doc is None:
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.flask(environ, start)
        text, status = store(self.ctx, raw, doc)
        body = text.encode()
        start(STATUS_LINES[status], [*FAST_HEADERS, ("Content-Length", str(len(body)))])
        return [body]

    def _accepted(self, environ: WSGIEnvironment) -> bytes | None:
        """The raw body of a POST /webhook with a sane Content-Length, else None (the
        stream is then untouched)."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/webhook":
            return None
        length = environ.get("CONTENT_LENGTH") or ""
        if environ.get("HTTP_TRANSFER_ENCODING") or not length.isdigit():
            return None
        size = int(length)
        if not 0 < size <= self.ctx.settings.max_body_bytes:
            return None
        mimetype = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        if mimetype not in JSON_TYPES:
            return None
        raw: bytes = environ["wsgi.input"].read(size)
        return raw

    def _checked(self, environ: WSGIEnvironment, raw: bytes) -> dict[str, Any] | None:
        """The body's document when the Flask route would store it, else None."""
        settings = self.ctx.settings
        if len(raw) != int(environ["CONTENT_LENGTH"]):
            return None  # the client went away: Flask says so
        if settings.signature_required:
            verify(raw, environ.get("HTTP_X_HUB_SIGNATURE_256"), settings.meta_app_secret)
        doc = load_json_object(raw, settings.max_json_depth)
        return doc if wanted(doc) else None


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

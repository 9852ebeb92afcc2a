"""The Flask side: the webhook endpoint, the query API, health, metrics and the RQ dashboard.

It knows nothing of billing rules; it stores bodies and reads the ledger.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from processor.context import Context, build_context
from processor.settings import Settings, load_settings


def create_app(settings: Settings | None = None, ctx: Context | None = None) -> Flask:
    """The app factory (gunicorn: ``'processor.web:create_app()'``)."""
    if ctx is None:
        ctx = build_context(settings or load_settings(os.environ))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = ctx.settings.max_body_bytes
    app.extensions["wa_billing"] = ctx
    from processor.web import (
        api,
        costs,
        dashboard,
        headers,
        money_api,
        openapi,
        ops,
        reconciliation,
        webhook,
    )

    app.register_blueprint(webhook.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(reconciliation.bp)
    app.register_blueprint(money_api.bp)
    costs.init_app(app)
    dashboard.init_app(app, ctx)
    headers.init_app(app)  # X-Content-Type-Options: nosniff on every answer
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(redis.RedisError, _store_unavailable)
    app.wsgi_app = webhook.FastPath(app.wsgi_app, ctx)  # type: ignore[method-assign,assignment]
    return app


def _store_unavailable(exc: redis.RedisError) -> Any:
    """Redis is down or refused: 503, to be tried again; never a 500 with a traceback."""
    response = jsonify(error="Service Unavailable", detail="the store is unavailable")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def _http_error(exc: HTTPException) -> Any:
    response = jsonify(error=exc.name, detail=exc.description)
    response.status_code = exc.code or 500
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="wa-billing"'
    return response

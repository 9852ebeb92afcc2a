"""Bearer-token (or HTTP basic, password = token) access to the API and the dashboard;
the app's context."""

from __future__ import annotations

import base64
import hmac

from flask import Blueprint, Request, abort, current_app, request

from processor.context import Context


def authorized(request: Request, token: str) -> bool:
    """Whether ``request`` carries ``token`` (constant-time compare)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def context() -> Context:
    """The processor's context of the running app."""
    ctx: Context = current_app.extensions["wa_billing"]
    return ctx


def require_token(bp: Blueprint) -> None:
    """Every route of ``bp`` answers 401 unless the request carries the API token."""

    @bp.before_request
    def _require_token() -> None:
        if not authorized(request, context().settings.api_token):
            abort(401, "a valid 'Authorization: Bearer <API_TOKEN>' header is required")

"""Bearer-token (or HTTP basic, password = token) access to the API and the dashboard."""

from __future__ import annotations

import base64
import hmac

from flask import Request


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

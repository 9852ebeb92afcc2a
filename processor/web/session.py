"""The dashboard's sign-in session and CSRF tokens, signed with a key derived from API_TOKEN.

A session cookie is ``<expiry>.<hex HMAC>``: nothing to store server-side, and changing
API_TOKEN signs everyone out. Forms carry a CSRF token: before sign-in a random value that must
equal the (HttpOnly, SameSite=Strict) ``wab_csrf`` cookie (double submit); after sign-in an HMAC
of the session cookie. Cookies are Secure, HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "wab_session"
CSRF_COOKIE = "wab_csrf"
SESSION_SECONDS = 12 * 3600


def _key(token: str, purpose: str) -> bytes:
    return hmac.new(token.encode(), f"wa-billing dashboard {purpose}".encode(), "sha256").digest()


def _mac(token: str, purpose: str, value: str) -> str:
    return hmac.new(_key(token, purpose), value.encode(), hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> str:
    expiry = str(int((now if now is not None else time.time()) + SESSION_SECONDS))
    return f"{expiry}.{_mac(token, 'session', expiry)}"


def valid_session(token: str, cookie: str | None, now: float | None = None) -> bool:
    if not cookie or "." not in cookie:
        return False
    expiry, _, mac = cookie.partition(".")
    if not expiry.isdigit() or len(expiry) > 12:
        return False
    expected = _mac(token, "session", expiry)
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return False
    return int(expiry) > (now if now is not None else time.time())


def session_csrf(token: str, cookie: str) -> str:
    """The CSRF token of forms shown to a signed-in session."""
    return _mac(token, "csrf", cookie)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())

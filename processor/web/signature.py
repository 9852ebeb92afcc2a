"""Meta's ``X-Hub-Signature-256``: HMAC-SHA256 of the raw body with the app secret."""

from __future__ import annotations

import hashlib
import hmac

from processor.errors import BadSignature

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> None:
    """Raise :class:`BadSignature` unless ``header`` signs the raw ``body`` bytes."""
    if not header:
        raise BadSignature("missing X-Hub-Signature-256")
    if not header.startswith(PREFIX):
        raise BadSignature("X-Hub-Signature-256 must start with sha256=")
    expected = sign(body, secret)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise BadSignature("signature does not match the body")

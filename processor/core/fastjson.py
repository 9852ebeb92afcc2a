"""JSON at the hot boundaries (webhook bodies, pair histories), decoded and encoded by orjson
where it gives exactly what the standard library gives, and by the standard library otherwise.

orjson differs from ``json`` on a few inputs: integers beyond 64 bits (it returns a float),
``NaN``/``Infinity`` and numbers that overflow a double (refused), lone surrogates (refused).
Those bodies are decoded by ``json`` as before, so what a body means never depends on the
decoder: a run of 19 or more digits anywhere sends the body to ``json`` up front (a byte
translation and a substring search, a few microseconds); the others make orjson fail, and
``json`` then decides.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Digits stay digits, every other byte becomes a space: a run of 19 digits (a number that may
# not fit 64 bits, or digits inside a string) shows as 19 zeros.
_DIGITS = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def loads(raw: bytes | str) -> Any:
    """``json.loads(raw.decode("utf-8"))`` (or of ``raw`` text), faster; raises what that
    raises."""
    if isinstance(raw, str):
        try:
            raw = raw.encode()
        except UnicodeEncodeError:  # lone surrogates: json decides
            return json.loads(raw)
    if _LONG_RUN not in raw.translate(_DIGITS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json decides: it accepts a few things orjson refuses, and says why not
    return json.loads(raw.decode("utf-8"))


def dumps(doc: Any) -> str:
    """``json.dumps(doc, separators=(",", ":"))``: the same document (non-ASCII text stays
    UTF-8 rather than ``\\u`` escapes, which decodes to the same strings, in Lua's cjson
    too); what orjson cannot encode (integers beyond 64 bits, lone surrogates, keys that are
    not strings) is encoded by ``json``."""
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(doc, separators=(",", ":"))


def dumps_sorted(doc: Any) -> str:
    """``json.dumps(doc, separators=(",", ":"), sort_keys=True)``, as :func:`dumps`."""
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)

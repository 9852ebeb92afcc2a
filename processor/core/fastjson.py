"""JSON at the hot boundaries (webhook bodies, pair histories), decoded and encoded by orjson
where it gives exactly what the standard library gives, and by the standard library otherwise.

orjson differs from ``json`` on a few inputs: integers beyond 64 bits (it returns a float),
``NaN``/``Infinity`` and numbers that overflow a double (refused), lone surrogates (refused).
Those bodies are decoded by ``json`` as before, so what a body means never depends on the
decoder: a number token of 19+ digits sends the body to ``json`` up front; the others make
orjson fail, and ``json`` then decides.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# A number token (after ``:``, ``,`` or ``[``) with 19 or more digits: may not fit 64 bits.
_LONG_NUMBER = re.compile(rb"[:,\[]\s*-?[0-9]{19}")


def loads(raw: bytes) -> Any:
    """``json.loads(raw.decode("utf-8"))``, faster; raises what that raises."""
    if not _LONG_NUMBER.search(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json decides: it accepts a few things orjson refuses, and says why not
    return json.loads(raw.decode("utf-8"))


def dumps_sorted(doc: Any) -> str:
    """``json.dumps(doc, separators=(",", ":"), sort_keys=True)`` for documents of str keys,
    ints, strs, lists, dicts, None and bools; non-ASCII stays UTF-8 (the same document)."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()

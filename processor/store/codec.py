"""Decoding redis-py replies (typed as ``bytes | str`` unions) into what the code expects."""

from __future__ import annotations

from typing import Any, cast


def text(value: Any) -> str:
    """A reply value as text (clients here do not decode responses)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """An XRANGE/XREVRANGE/XAUTOCLAIM list of entries."""
    return cast(list[tuple[bytes, dict[bytes, bytes]]], reply or [])


def mapping(reply: Any) -> dict[bytes, bytes]:
    """An HGETALL/HSCAN mapping."""
    return cast(dict[bytes, bytes], reply or {})

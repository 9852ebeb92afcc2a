"""The calls of one (business number, user) pair, as kept in its history (rule book §8).

Each call is stored as ``{"d": direction, "e": {event: earliest time}, "t": terminate}`` with
``terminate = [timestamp, status, start_time, end_time, duration]``. Merging is commutative
(earliest times, any known field), so a redelivered or reordered webhook changes nothing.

A call that opens or refreshes the customer service window (§8.2) is also written into the
pair's inbound moments as ``call:<call id>`` at the time :func:`calls.window_opened_at` gives,
so the message rules read it like a message from the user. Pure: no clock, no store.
"""

from __future__ import annotations

from typing import Any

from processor.core.calls import BUSINESS_INITIATED, Terminate, window_opened_at
from processor.core.events import CallEvent

TERMINATE, ACCEPTED = "terminate", "accepted"
CSW_PREFIX = "call:"


def merge(
    calls: dict[str, dict[str, Any]], inbound: dict[str, list[Any]], event: CallEvent
) -> bool:
    """Add ``event`` to ``calls``; keep the call's CSW moment in ``inbound``; True if changed."""
    old = calls.get(event.call_id)
    fact: dict[str, Any] = {"d": None, "e": {}, "t": None} if old is None else _copy(old)
    if event.direction is not None:
        fact["d"] = event.direction if fact["d"] is None else min(fact["d"], event.direction)
    if event.event == TERMINATE:
        new = [event.timestamp, event.status, event.start_time, event.end_time, event.duration]
        fact["t"] = new if fact["t"] is None else _merge_terminate(fact["t"], new)
    else:
        seen = fact["e"].get(event.event)
        fact["e"][event.event] = event.timestamp if seen is None else min(seen, event.timestamp)
    if fact == old:
        return False
    calls[event.call_id] = fact
    _window(event.call_id, fact, inbound)
    return True


def terminate_of(call_id: str, fact: dict[str, Any]) -> Terminate | None:
    """The call's terminate webhook as the pure rules read it (None until it came)."""
    t = fact.get("t")
    if t is None:
        return None
    direction = fact.get("d") or BUSINESS_INITIATED  # call statuses exist for BICs only
    return Terminate(call_id, direction, t[1] or "", t[0], t[2], t[3], t[4])


def times(calls: dict[str, dict[str, Any]]) -> list[int]:
    """Every event time of the calls (for the history's horizon)."""
    found = []
    for fact in calls.values():
        found += fact["e"].values()
        if fact["t"] is not None:
            found.append(fact["t"][0])
    return found


def _window(call_id: str, fact: dict[str, Any], inbound: dict[str, list[Any]]) -> None:
    events: dict[str, int] = fact["e"]
    opened = window_opened_at(
        fact["d"] or BUSINESS_INITIATED,
        connect_at=min(
            (events[k] for k in ("connect", "call_created") if k in events), default=None
        ),
        accepted_at=events.get(ACCEPTED),
        terminate=terminate_of(call_id, fact),
    )
    if opened is not None:
        inbound[CSW_PREFIX + call_id] = [opened, 0]
    else:
        inbound.pop(CSW_PREFIX + call_id, None)


def _merge_terminate(old: list[Any], new: list[Any]) -> list[Any]:
    """Earliest timestamp; each other field: the known one, or the smaller when both are."""
    merged = [min(old[0], new[0])]
    for a, b in zip(old[1:], new[1:], strict=True):
        merged.append(a if b is None else b if a is None else min(a, b))
    return merged


def _copy(fact: dict[str, Any]) -> dict[str, Any]:
    return {
        "d": fact["d"],
        "e": dict(fact["e"]),
        "t": None if fact["t"] is None else list(fact["t"]),
    }

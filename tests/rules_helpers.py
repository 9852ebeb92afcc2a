"""Builders for the rule-book tests: one pair's events, merged into a history and evaluated.

Times are Unix seconds; ``ERA[policy_id]`` is a UTC midnight well inside that era, so a test
reads ``t0 + 4 * H`` for "four hours after the start".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from processor.core.events import (
    DELIVERED,
    FAILED,
    READ,
    SENT,
    Conversation,
    Event,
    Inbound,
    Pair,
    Pricing,
    Status,
)
from processor.core.history import PairHistory
from processor.core.model import Evaluation, Unit, evaluate
from processor.core.policies import PolicyBook

H = 3_600
DAY = 24 * H
UTC = ZoneInfo("UTC")
BOOK = PolicyBook()
PAIR = Pair("waba-1", "phone-1", "5511988887777")


def ts(text: str, tz: str = "UTC") -> int:
    """Unix seconds of the local date-time ``text`` (ISO format) in the zone ``tz``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp())


ERA = {
    "cbp-2022": ts("2022-09-05T00:00"),
    "cbp-2023": ts("2023-11-13T00:00"),
    "cbp-2024-11": ts("2025-01-13T00:00"),
    "pmp-2025-07": ts("2025-09-08T00:00"),
    "pmp-2026-10": ts("2026-11-09T00:00"),
}
CBP_ERAS = ("cbp-2022", "cbp-2023", "cbp-2024-11")
CATEGORY_ERAS = ("cbp-2023", "cbp-2024-11")
PMP_ERAS = ("pmp-2025-07", "pmp-2026-10")


def inbound(t: int, referral: bool = False, wamid: str | None = None, pair: Pair = PAIR) -> Event:
    """A message from the user (``referral``: it came from an ad or a Page call-to-action)."""
    return Inbound(pair, wamid or f"in-{t}", t, "text", referral)


def status(
    wamid: str,
    state: str,
    t: int,
    category: str | None = None,
    conv_id: str | None = None,
    ptype: str | None = None,
    model: str | None = None,
    expires: int | None = None,
    pair: Pair = PAIR,
) -> Event:
    """A status of ``wamid``; Meta's pricing/conversation fields only where given."""
    pricing = None
    if category is not None or ptype is not None or model is not None:
        pricing = Pricing(billable=None, model=model, category=category, type=ptype)
    conversation = None
    if conv_id is not None:
        conversation = Conversation(conv_id, expires, category)
    return Status(pair, wamid, state, t, conversation, pricing)


def delivered(wamid: str, t: int, category: str | None = None, **meta: object) -> Event:
    return status(wamid, DELIVERED, t, category, **meta)  # type: ignore[arg-type]


def read(wamid: str, t: int, category: str | None = None, **meta: object) -> Event:
    return status(wamid, READ, t, category, **meta)  # type: ignore[arg-type]


def sent(wamid: str, t: int, category: str | None = None, **meta: object) -> Event:
    return status(wamid, SENT, t, category, **meta)  # type: ignore[arg-type]


def failed(wamid: str, t: int, pair: Pair = PAIR) -> Event:
    return Status(pair, wamid, FAILED, t, error_codes=(131049,))


def reply(wamid: str, t: int, **meta: object) -> Event:
    """A delivered non-template (free-form) message: Meta's category ``service``."""
    return delivered(wamid, t, "service", **meta)


def history_of(events: Iterable[Event]) -> PairHistory:
    history = PairHistory()
    for event in events:
        history.merge(event)
    return history


def run(
    events: Iterable[Event], tz: ZoneInfo = UTC, book: PolicyBook = BOOK, pair: Pair = PAIR
) -> Evaluation:
    """Merge ``events`` into a fresh history and evaluate it."""
    return evaluate(pair, history_of(events), tz, book)


def units(events: Iterable[Event], tz: ZoneInfo = UTC, book: PolicyBook = BOOK) -> list[Unit]:
    evaluation = run(events, tz, book)
    assert not evaluation.pending, evaluation.pending
    return list(evaluation.units)


def only(events: Iterable[Event], tz: ZoneInfo = UTC, book: PolicyBook = BOOK) -> Unit:
    """The single unit ``events`` produce (fails if there are more or fewer)."""
    [unit] = units(events, tz, book)
    return unit


def unit_of(wamid: str, found: Iterable[Unit]) -> Unit:
    """The unit whose first message is ``wamid``."""
    [unit] = [u for u in found if u.wamid == wamid]
    return unit


def summary(found: Iterable[Unit]) -> list[tuple[str, str, str | None, str | None]]:
    """(first wamid, category, free_reason, bucket) of each unit, in charge-time order."""
    return [(u.wamid, u.category, u.free_reason, u.bucket) for u in found]

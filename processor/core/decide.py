"""Decide: what a batch of one pair's events changes, from the pair's stored history (pure).

``decide`` merges the events into the history (a set: redeliveries and arrival order do not
matter), evaluates the pair once when something new came, and compares the units it produces
with the units already booked (by a digest of each unit). The ledger then encodes the units
to put and void into the apply script's operations, trims the history when the decision says
so, and runs the script; nothing here reads Redis, the clock or the environment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo

from processor.core.call_units import call_units
from processor.core.events import Event, Pair, Status
from processor.core.groups import unexpected
from processor.core.history import PairHistory
from processor.core.model import Evaluation, Unit, evaluate
from processor.core.policies import PolicyBook

DAY = 86_400
TOO_LATE = "older than the pair's history horizon (PAIR_HORIZON_DAYS)"
UNIT_FIELDS = tuple(f.name for f in fields(Unit))
# Fields added after units were first booked: left out of the digest while at their default,
# so that a unit booked before them keeps its digest (no new version for nothing).
LATER = ("participant", "group_id", "meta_in_tier", "pricing_subtype", "unrated")
LATER_FIELDS = {f.name: f.default for f in fields(Unit) if f.name in LATER}


@dataclass
class Decision:
    """What the events of one pair change. ``new`` are the events to claim (empty: nothing
    to write)."""

    new: list[Event] = field(default_factory=list)
    duplicates: int = 0  # redeliveries
    unchanged: int = 0  # new, but adding nothing the rules read (a read after delivered...)
    rejected: list[tuple[Event, str]] = field(default_factory=list)
    evaluation: Evaluation | None = None
    put: list[tuple[Unit, str, list[Any] | None]] = field(default_factory=list)
    """units new or changed: (unit, its digest, its stored entry or None)"""
    kept: dict[str, list[Any]] = field(default_factory=dict)  # record_id -> stored entry
    void: list[tuple[str, list[Any]]] = field(default_factory=list)  # units that vanished
    trim_to: int | None = None  # after booking, cut the history at this time


def decide(
    pair: Pair,
    history: PairHistory,
    events: list[Event],
    tz: ZoneInfo,
    book: PolicyBook,
    horizon: int,
    may_trim: bool = True,
) -> Decision:
    """Merge ``events`` into ``history`` (in place) and decide what changes."""
    decision = Decision()
    for event in events:
        settled = isinstance(event, Status) and history.is_settled(event.history_key)
        if event.timestamp < history.floor and not settled:
            decision.rejected.append((event, TOO_LATE))
            continue
        refused = unexpected(event, tz, book)  # a group status before per-message pricing
        if refused is not None:
            decision.rejected.append((event, refused))
            continue
        changed = merge(history, event)
        if changed is None:
            decision.duplicates += 1
        elif not changed:
            decision.unchanged += 1
        else:
            decision.new.append(event)
    if not decision.new:
        return decision
    evaluation = evaluate(pair, history, tz, book)
    if history.calls:  # connected calls are units too (rule book 8.4)
        calls = tuple(call_units(pair, history, tz, book))
        evaluation = replace(evaluation, units=evaluation.units + calls)
    decision.evaluation = evaluation
    for unit in evaluation.units:
        digest = signature(unit)
        stored = history.units.get(unit.record_id)
        if stored is not None and stored[0] == digest:
            decision.kept[unit.record_id] = stored
        else:
            decision.put.append((unit, digest, stored))
    produced = {u.record_id for u in evaluation.units}
    decision.void = [(rid, history.units[rid]) for rid in history.units.keys() - produced]
    newest = history.newest()
    if may_trim and newest - history.oldest() > horizon + DAY:
        decision.trim_to = newest - horizon  # only after every unit of the batch is booked
    return decision


def merge(history: PairHistory, event: Event) -> bool | None:
    """Merge ``event``: True if it changed the history; None for a redelivery; False for a
    new status that can never matter (a ``read`` after a priced ``delivered``...)."""
    if isinstance(event, Status) and history.dominated(event):
        return False
    return True if history.merge(event) else None


def signature(unit: Unit) -> str:
    """A short digest of everything that makes up a unit (a change means a new version)."""
    names = UNIT_FIELDS if type(unit) is Unit else tuple(f.name for f in fields(unit))
    values = [(name, getattr(unit, name)) for name in names]
    text = "\x1f".join(
        [str(v) for name, v in values if name not in LATER_FIELDS or v != LATER_FIELDS[name]]
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

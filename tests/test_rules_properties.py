"""Invariants of the window model over generated histories (rule book sections 4 and 6).

Histories are a few inbound messages and outbound messages on a half-hour grid (so that
exact 24h/72h edges and equal timestamps occur), around the era boundaries, with and without
Meta's pricing and conversation fields.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import Event, Pair, Status
from processor.core.history import PairHistory
from processor.core.model import Evaluation, evaluate, trim, walk
from processor.core.policies import (
    AUTHENTICATION,
    BUSINESS_INITIATED,
    CONVERSATION,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    FREE_SERVICE,
    MARKETING,
    REFERRAL,
    SERVICE,
    USER_INITIATED,
    UTILITY,
)
from tests.rules_helpers import BOOK, ERA, PAIR, UTC, H, history_of, inbound, status, ts

OTHER = Pair(PAIR.waba_id, "phone-2", "5511977776666")
STEP = 1_800  # half an hour: 24h and 72h are whole numbers of steps
SPAN = 160  # steps: 80 hours
BASES = [
    ERA["cbp-2022"],
    ts("2023-05-30T12:00"),
    ts("2024-10-30T12:00"),
    ts("2025-06-29T12:00"),
    ts("2026-09-29T12:00"),
]
CATEGORIES = [None, MARKETING, UTILITY, AUTHENTICATION, "authentication-international", SERVICE]
DELAYS = [0, 60, 2 * H, 26 * H]  # of each status after the message was sent (phones go offline)
LIFECYCLES = [  # what Meta reports of one message, in any order (failed is never delivered)
    ["sent"],
    ["failed"],
    ["sent", "failed"],
    ["delivered"],
    ["read"],
    ["sent", "delivered"],
    ["sent", "read"],
    ["delivered", "read"],
    ["sent", "delivered", "read"],
]
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def outbound(draw: Any, base: int, wamid: str, meta: bool, pair: Pair) -> list[Event]:
    """The statuses of one outbound message, some with Meta's fields."""
    t = base + draw(st.integers(0, SPAN)) * STEP
    category = draw(st.sampled_from(CATEGORIES + ([REFERRAL] if meta else [])))
    fields: dict[str, Any] = {}
    if meta and draw(st.booleans()):
        fields["conv_id"] = draw(st.sampled_from(["c0", "c1"]))
        fields["expires"] = draw(st.sampled_from([None, t + 24 * H, t + 72 * H, t + 12 * H]))
    if meta and draw(st.booleans()):
        fields["ptype"] = draw(
            st.sampled_from(["regular", FREE_CUSTOMER_SERVICE, FREE_ENTRY_POINT])
        )
        fields["model"] = draw(st.sampled_from(["CBP", "PMP"]))
    states = draw(st.sampled_from(LIFECYCLES))
    if draw(st.booleans()):  # the same status reported again, at another time (seen in the wild)
        states = [*states, draw(st.sampled_from(states))]
    events: list[Event] = []
    for state in states:
        at = t + draw(st.sampled_from(DELAYS))
        if draw(st.booleans()):
            events.append(status(wamid, state, at, category, pair=pair, **fields))
        else:
            events.append(status(wamid, state, at, pair=pair))
    return events


@st.composite
def histories(draw: Any, meta: bool = True, pairs: tuple[Pair, ...] = (PAIR,)) -> list[Event]:
    """Events of a few pairs around one era boundary."""
    base = draw(st.sampled_from(BASES))
    events: list[Event] = []
    for p, pair in enumerate(pairs):
        for i in range(draw(st.integers(0, 4))):
            t = base + draw(st.integers(0, SPAN)) * STEP
            events.append(inbound(t, draw(st.booleans()), wamid=f"in{p}-{i}", pair=pair))
        for i in range(draw(st.integers(1, 7))):
            events += draw(outbound(base, f"m{p}-{i}", meta, pair))
    return events


def by_pair(events: list[Event]) -> dict[Pair, Evaluation]:
    grouped: dict[Pair, PairHistory] = defaultdict(PairHistory)
    for event in events:
        grouped[event.pair].merge(event)
    return {pair: evaluate(pair, history, UTC, BOOK) for pair, history in grouped.items()}


# -- at least once, in any order -----------------------------------------------------------------


@FAST
@given(data=st.data(), events=histories(pairs=(PAIR, OTHER)))
def test_any_arrival_order_with_duplicates_gives_the_same_units_and_pending(
    data: Any, events: list[Event]
) -> None:
    """Meta delivers at least once and in no order: any permutation of the events, with any
    of them repeated, gives identical units and pending messages."""
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=6))
    shuffled = data.draw(st.permutations(events + repeats))
    assert by_pair(shuffled) == by_pair(events)


@FAST
@given(events=histories())
def test_a_stored_and_reloaded_history_evaluates_the_same(events: list[Event]) -> None:
    """The history is stored as JSON between events: reloading it changes nothing."""
    history = history_of(events)
    reloaded = PairHistory.loads(history.dumps(), "v1")
    assert evaluate(PAIR, reloaded, UTC, BOOK) == evaluate(PAIR, history, UTC, BOOK)


# -- one unit per message ----------------------------------------------------------------------


@FAST
@given(events=histories())
def test_every_delivered_message_is_in_exactly_one_unit_or_pending(events: list[Event]) -> None:
    """Nothing is counted twice: no wamid is in two units, and each delivered message belongs
    to one unit or waits as pending; undelivered ones are in neither."""
    history = history_of(events)
    done = walk(PAIR, history, UTC, BOOK)
    delivered = {w for w in history.outbound if history.facts(w).charge_time is not None}
    pending = {p.wamid for p in done.pending}
    firsts = [u.wamid for u in done.units.values()]
    assert len(firsts) == len(set(firsts))
    assert set(done.members) | pending == delivered
    assert not set(done.members) & pending
    assert set(firsts) <= set(done.members)


@FAST
@given(events=histories())
def test_reasons_and_buckets_stay_in_the_rule_books_vocabulary(events: list[Event]) -> None:
    """free_reason is free_entry_point, free_customer_service, free_service or null; only
    owed units enter a bucket; FEP units never do."""
    for unit in evaluate(PAIR, history_of(events), UTC, BOOK).units:
        assert unit.free_reason in (None, FREE_ENTRY_POINT, FREE_CUSTOMER_SERVICE, FREE_SERVICE)
        assert unit.bucket is None or unit.free_reason is None
        assert (unit.category == REFERRAL) == (unit.free_reason == FREE_ENTRY_POINT)


# -- at most one open conversation per category --------------------------------------------------


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@settings(max_examples=250, deadline=None)
@given(events=histories(meta=False))
def test_at_most_one_open_conversation_per_category_at_any_time(events: list[Event]) -> None:
    """At most one conversation per category is open at once (cbp-2023 on); under cbp-2022 at
    most one at all, apart from the FEP that replaces it. (The model's own decisions: Meta's
    conversation ids are left out, since Meta's answer wins even where it overlaps.)"""
    conversations = [
        u for u in evaluate(PAIR, history_of(events), UTC, BOOK).units if u.kind == CONVERSATION
    ]
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for unit in conversations:
        assert unit.expires_at is not None
        initiator = unit.category in (USER_INITIATED, BUSINESS_INITIATED)
        groups["initiator" if initiator else unit.category].append(
            (unit.charge_time, unit.expires_at)
        )
    for windows in groups.values():
        for a, b in combinations(windows, 2):
            assert not overlaps(a, b), (a, b)


# -- trimming --------------------------------------------------------------------------------


def settled_before(events: list[Event], cutoff: int) -> set[str]:
    history = history_of(events)
    return {w for w in history.outbound if (history.facts(w).charge_time or cutoff) < cutoff}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=histories())
def test_trimming_then_merging_later_events_gives_the_same_later_units(
    data: Any, events: list[Event]
) -> None:
    """Trimming at a cutoff keeps the windows the forgotten events leave behind: merging the
    later events then gives the same units charged after the cutoff as never trimming.
    (A message charged before the cutoff is settled as it stands: later statuses of it that
    bring new pricing are out of scope, as the ledger's floor intends.)"""
    cutoff = data.draw(st.sampled_from(sorted({e.timestamp for e in events})))
    settled = settled_before(events, cutoff)
    events = [
        e
        for e in events
        if not (
            isinstance(e, Status)
            and e.wamid in settled
            and e.timestamp >= cutoff
            and (e.pricing or e.conversation)
        )
    ]
    earlier = [e for e in events if e.timestamp < cutoff]
    later = [e for e in events if e.timestamp >= cutoff]
    trimmed = history_of(earlier)
    trim(PAIR, trimmed, cutoff, UTC, BOOK)
    for event in later:
        trimmed.merge(event)
    full = evaluate(PAIR, history_of(events), UTC, BOOK)
    kept = evaluate(PAIR, trimmed, UTC, BOOK)
    assert [u for u in kept.units if u.charge_time >= cutoff] == [
        u for u in full.units if u.charge_time >= cutoff
    ]

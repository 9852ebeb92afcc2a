"""The pure decide step (processor.core.decide): what a batch of one pair's events changes."""

from __future__ import annotations

from datetime import UTC

from processor.core.decide import TOO_LATE, decide, signature
from processor.core.events import Pair, Pricing, Status
from processor.core.history import PairHistory
from processor.core.policies import PolicyBook

PAIR = Pair("w-1", "phone-1", "5511900000001")
T = 1_790_812_800 + 3 * 86_400  # October 2026
HORIZON = 10 * 86_400
BOOK = PolicyBook()


def status(wamid: str, state: str, t: int, category: str = "marketing") -> Status:
    return Status(PAIR, wamid, state, t, None, Pricing(True, "PMP", category, "regular"))


def booked(history: PairHistory, events: list[Status]) -> PairHistory:
    """``history`` after deciding ``events`` and booking every unit put (as the ledger does)."""
    decision = decide(PAIR, history, events, UTC, BOOK, HORIZON)
    history.units = dict(decision.kept)
    for unit, digest, _ in decision.put:
        history.units[unit.record_id] = [digest, unit.charge_time, "2026-10", ""]
    return history


def test_a_delivered_marketing_message_puts_one_unit() -> None:
    decision = decide(PAIR, PairHistory(), [status("m1", "delivered", T)], UTC, BOOK, HORIZON)
    assert len(decision.new) == 1 and len(decision.put) == 1 and not decision.void
    unit, digest, stored = decision.put[0]
    assert unit.wamid == "m1" and digest == signature(unit) and stored is None


def test_a_read_after_a_priced_delivered_changes_nothing() -> None:
    """A read adds nothing the rules read: no evaluation, nothing to claim or write."""
    history = booked(PairHistory(), [status("m1", "delivered", T)])
    decision = decide(PAIR, history, [status("m1", "read", T + 30)], UTC, BOOK, HORIZON)
    assert (decision.unchanged, decision.new, decision.evaluation) == (1, [], None)


def test_a_redelivered_status_is_a_duplicate() -> None:
    history = booked(PairHistory(), [status("m1", "delivered", T)])
    decision = decide(PAIR, history, [status("m1", "delivered", T)], UTC, BOOK, HORIZON)
    assert (decision.duplicates, decision.new) == (1, [])


def test_units_already_booked_unchanged_are_kept_not_put() -> None:
    history = booked(PairHistory(), [status("m1", "delivered", T)])
    decision = decide(PAIR, history, [status("m2", "delivered", T + 60)], UTC, BOOK, HORIZON)
    assert [u.wamid for u, _, _ in decision.put] == ["m2"]
    assert len(decision.kept) == 1 and not decision.void


def test_a_booked_unit_the_pair_no_longer_produces_is_voided() -> None:
    history = booked(PairHistory(), [status("m1", "delivered", T)])
    history.units["ghost"] = ["0" * 16, T - 60, "2026-10", ""]
    decision = decide(PAIR, history, [status("m2", "delivered", T + 60)], UTC, BOOK, HORIZON)
    assert decision.void == [("ghost", ["0" * 16, T - 60, "2026-10", ""])]


def test_a_unit_whose_facts_change_is_put_again_with_its_stored_entry() -> None:
    """A read earlier than the delivered moves the charge time: a new version."""
    history = booked(PairHistory(), [status("m1", "delivered", T)])
    [(rid, entry)] = list(history.units.items())
    decision = decide(PAIR, history, [status("m1", "read", T - 100)], UTC, BOOK, HORIZON)
    [(unit, digest, stored)] = decision.put
    assert (unit.record_id, unit.charge_time, stored) == (rid, T - 100, entry)
    assert digest != entry[0]


def test_an_event_older_than_the_floor_is_rejected_too_late() -> None:
    history = PairHistory(floor=T)
    decision = decide(PAIR, history, [status("m0", "delivered", T - 1)], UTC, BOOK, HORIZON)
    assert decision.rejected == [(status("m0", "delivered", T - 1), TOO_LATE)]


def test_a_history_longer_than_the_horizon_is_cut_after_booking() -> None:
    events = [status("m1", "delivered", T), status("m2", "delivered", T + HORIZON + 2 * 86_400)]
    decision = decide(PAIR, PairHistory(), events, UTC, BOOK, HORIZON)
    assert decision.trim_to == T + 2 * 86_400
    kept = decide(PAIR, PairHistory(), events, UTC, BOOK, HORIZON, may_trim=False)
    assert kept.trim_to is None

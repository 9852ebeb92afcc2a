"""Calls at the edges (rule book §8.3, §8.1.4 to 8.1.7): the parser reads Meta's ``calls``
webhook shapes and quarantines malformed items; the calling rate files are validated like the
other configuration files (``file:line:column``); shipped config prices no call."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from processor.config_files import load_ratebook
from processor.core.account_events import wanted
from processor.core.calls import BUSINESS_INITIATED, USER_INITIATED, CallTier
from processor.core.events import CallEvent, Pair
from processor.core.parse import parse_document
from tests.call_payloads import BUSINESS, GEORGIA, call_status, calls_body, connect, terminate
from tests.payloads import PHONE, WABA
from tests.test_config_files import SHIPPED, problems_of, write

T = 1_795_000_000
PAIR = Pair(WABA, PHONE, GEORGIA)


def parsed(doc: dict[str, Any]) -> tuple[list[Any], list[str]]:
    body = parse_document(doc)
    return list(body.events), [f"{r.path}: {r.reason}" for r in body.rejected]


def test_parse_the_reference_terminate() -> None:
    """The §8.3 BIC terminate: the callee is the user, times and duration as integers."""
    events, rejected = parsed(calls_body([terminate("wacid.A", T, 120)]))
    assert rejected == []
    assert events == [
        CallEvent(PAIR, "wacid.A", "terminate", T, BUSINESS_INITIATED, "COMPLETED", T - 120, T, 120)
    ]


def test_parse_the_real_uic_log() -> None:
    """The 2025-10-17 log: UIC connect then terminate FAILED with a duration (the caller is the
    user; a numeric-string duration and lower-case status are accepted)."""
    item = terminate("wacid.U", T, 20, uic=True, status="Failed")
    item["duration"] = "20"
    events, rejected = parsed(calls_body([connect("wacid.U", T - 27, uic=True), item]))
    assert rejected == []
    assert [(e.event, e.direction, e.pair.user_id, e.status, e.duration) for e in events] == [
        ("connect", USER_INITIATED, GEORGIA, None, None),
        ("terminate", USER_INITIATED, GEORGIA, "FAILED", 20),
    ]
    assert events[0].pair.user_id != BUSINESS


def test_parse_call_statuses_and_skip_recordings() -> None:
    """``statuses[]`` with ``type: call`` are call statuses; recording events carry no charge."""
    recording = {"id": "wacid.R", "event": "call_recording_available", "timestamp": str(T)}
    doc = calls_body([recording], statuses=[call_status("wacid.S", "ACCEPTED", T)])
    events, rejected = parsed(doc)
    assert rejected == []
    assert events == [CallEvent(PAIR, "wacid.S", "accepted", T)]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({**terminate("wacid.B", T, 5), "duration": -5}, "duration is not a number of seconds"),
        ({**terminate("wacid.B", T, 5), "direction": "SIDEWAYS"}, "unknown call direction"),
        ({**terminate("wacid.B", T, 5), "status": "LOST"}, "unknown terminate status"),
        ({**terminate("wacid.B", T, 5), "id": "a|b"}, "id is not a call id"),
        ({**terminate("wacid.B", T, 5), "to": "x"}, "to is not a phone number"),
        ({**terminate("wacid.B", T, 5), "timestamp": "soon"}, "timestamp is not Unix seconds"),
        ({"id": "wacid.B"}, "call event missing"),
    ],
    ids=["negative", "direction", "status", "pipe", "callee", "time", "no-event"],
)
def test_malformed_call_items_are_quarantined_alone(item: dict[str, Any], reason: str) -> None:
    """A malformed call item is rejected with its reason and path; the others still flow."""
    events, rejected = parsed(calls_body([item, terminate("wacid.ok", T, 6)]))
    assert [e.call_id for e in events] == ["wacid.ok"]
    assert len(rejected) == 1 and reason in rejected[0]
    assert rejected[0].startswith("entry[0].changes[0].value.calls[0]")


def test_calls_bodies_are_stored() -> None:
    """The webhook keeps (and archives) bodies of field ``calls``."""
    assert wanted(calls_body([terminate("wacid.A", T, 6)]))


# -- configuration ---------------------------------------------------------------------------

HEADER = "effective_from,market,currency,from_minutes,to_minutes,rate_per_minute,source\n"


def test_calling_files_load_into_tiers(tmp_path: Path) -> None:
    """Tiers win over a flat rate where both are in force; a flat rate is one open band."""
    book = load_ratebook(
        write(
            tmp_path,
            {
                "calling_rates.csv": "effective_from,market,currency,rate_per_minute\n"
                "2025-08-01,India,USD,0.0100\n",
                "calling_tiers.csv": HEADER + "2026-01-01,India,USD,0,50000,0.0090,x\n"
                "2026-01-01,India,USD,50000,,0.0080,x\n",
            },
        )
    ).calling
    assert book.tiers("India", "USD", date(2025, 9, 1)) == (CallTier(D(0), None, D("0.0100")),)
    assert book.tiers("India", "USD", date(2026, 2, 1)) == (
        CallTier(D(0), D(50000), D("0.0090")),
        CallTier(D(50000), None, D("0.0080")),
    )
    assert book.tiers("India", "INR", date(2026, 2, 1)) == ()


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (
            {"calling_tiers.csv": HEADER + "2026-01-01,India,USD,10,50000,0.0090,x\n"},
            "calling_tiers.csv:2:4: the first tier must start at 0",
        ),
        (
            {"calling_tiers.csv": HEADER + "2026-01-01,India,USD,0,50000,0.0090,x\n"
             "2026-01-01,India,USD,40000,,0.0080,x\n"},
            "calling_tiers.csv:3:4: overlapping tier ranges with line 2",
        ),
        (
            {"calling_tiers.csv": HEADER + "2026-01-01,India,USD,0,50000,0.0090,x\n"
             "2026-01-01,India,USD,60000,,0.0080,x\n"},
            "calling_tiers.csv:3:4: gap in tiers: line 2 ends at 50000",
        ),
        (
            {"calling_tiers.csv": HEADER + "2026-01-01,India,USD,0,0,0.0090,x\n"},
            "calling_tiers.csv:2:5: to_minutes 0 must exceed from_minutes",
        ),
        (
            {"calling_rates.csv": "effective_from,market,currency,rate_per_minute\n"
             "2026-01-01,Atlantis,USD,0.01\n"},
            "calling_rates.csv:2:2: market 'Atlantis' is not in markets.csv",
        ),
        (
            {"calling_rates.csv": "effective_from,market,currency,rate_per_minute\n"
             "2026-01-01,India,usd,-0.01\n"},
            "calling_rates.csv:2:3: currency 'usd' is not 3 upper-case letters (like USD)",
        ),
        (
            {"calling_rates.csv": "effective_from,market,currency,rate_per_minute\n"
             "2026-01-01,India,USD,0.01\n2026-01-01,India,USD,0.02\n"},
            "calling_rates.csv:3:1: overlapping dates: India/USD has two rows effective 2026-01-01",
        ),
        (
            {"calling_rates.csv": "effective_from,market,currency,rate\n"},
            "calling_rates.csv:1:4: unknown column 'rate'",
        ),
    ],
    ids=["start", "overlap", "gap", "empty-band", "market", "currency", "duplicate", "column"],
)  # fmt: skip
def test_malformed_calling_files_name_their_place(
    tmp_path: Path, files: dict[str, str], problem: str
) -> None:
    """Every problem of the calling files is reported with its file, line and column."""
    found = problems_of(write(tmp_path, files))
    assert any(p.startswith(problem) for p in found), found


def test_shipped_config_prices_no_call() -> None:
    """No Meta calling rate is in public material: the shipped config has none (unrated)."""
    book = load_ratebook(SHIPPED)
    assert not book.calling
    assert not (SHIPPED / "calling_rates.csv").exists()
    assert not (SHIPPED / "calling_tiers.csv").exists()


# -- policy parameters (§8.1.9, §8.1.11) -----------------------------------------------------


def units_of(*events: CallEvent, **params: Any) -> list[Any]:
    """The call units of ``events`` under the real eras with ``params`` changed."""
    import dataclasses
    from zoneinfo import ZoneInfo

    from processor.core.call_units import call_units
    from processor.core.history import PairHistory
    from processor.core.policies import POLICIES, PolicyBook

    book = PolicyBook([dataclasses.replace(policy, **params) for policy in POLICIES])
    history = PairHistory()
    for event in events:
        history.merge(event)
    return call_units(PAIR, history, ZoneInfo("UTC"), book)


END = 1_796_083_240  # 2026-12-01T00:00:40Z
SPANNING = CallEvent(
    PAIR, "wacid.M", "terminate", END, BUSINESS_INITIATED, "COMPLETED", END - 70, END, 70
)


def test_call_charge_time_end_or_start() -> None:
    """``call_charge_time``: ``end`` (default) dates a call across midnight by its end;
    ``start`` by its start (rule book §8.1.9 Decision)."""
    [by_end] = units_of(SPANNING)
    [by_start] = units_of(SPANNING, call_charge_time="start")
    assert (by_end.charge_time, by_start.charge_time) == (END, END - 70)


def test_charge_failed_connected_calls_can_be_turned_off() -> None:
    """``charge_failed_connected_calls`` (default true): false gives a FAILED connected BIC no
    unit; a COMPLETED one is still charged (rule book §8.1.11 Decision)."""
    failed = CallEvent(
        PAIR, "wacid.F", "terminate", END, BUSINESS_INITIATED, "FAILED", END - 20, END, 20
    )
    assert [u.call_status for u in units_of(failed)] == ["FAILED"]
    assert units_of(failed, charge_failed_connected_calls=False) == []
    assert len(units_of(SPANNING, charge_failed_connected_calls=False)) == 1


def test_a_quarantined_call_item_keeps_no_session_description() -> None:
    """A rejected connect is kept without its SDP (it holds the parties' network addresses)."""
    item = {**connect("wacid.Q", T), "direction": "SIDEWAYS"}
    item["session"]["sdp"] = "v=0 c=IN IP4 203.0.113.7"
    [rejected] = parse_document(calls_body([item])).rejected
    assert "203.0.113.7" not in str(rejected.item) and "<redacted>" in str(rejected.item)

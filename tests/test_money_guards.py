"""Money and storage rules that a mutation run showed no test guarded (issue 16).

Each test is named after the rule it pins and fails on one deliberate bug:

- volume tiers are counted per *portfolio* (not per WABA) x market x category x month;
- every record's money sums exactly to its usage line, ``billed_cost`` included, after a run
  with a markup (a free record carries no money, list or billed);
- an applied event is claimed: a redelivery is refused by its claim even when the pair's
  state no longer remembers it;
- the k-th charged message is priced in the tier ``from < k <= to``: the unit exactly at a
  bound and the one just past it, through the ledger, a quote and a re-rating;
- the shipped policies' own 1,000-unit allowances (not an injected limit): the 1,000th unit
  is free and the 1,001st charged, in every era that has one.

Expectations are fixed numbers computed by hand from the rule book and this file's own rate
book (``tests/ledger_helpers.py``: Brazil marketing 0.0625, service 0.0068, business-initiated
0.0500, utility tiers 0.0068 for units 1-2, 0.0060 for 3-4, 0.0050 from 5), never from another
run of the ledger. They go through public paths only (ledger apply, stored records, usage).
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Event, Inbound, Pair, Pricing, Status
from processor.store.keys import Keys
from processor.store.ledger import Ledger, LedgerConfig
from processor.store.queries import Queries
from processor.store.quoting import Quoter
from processor.store.rerate import Rerater
from tests.ledger_helpers import PHONE, WABA, make_ledger, small_book, write_config

D = Decimal
DAY = 86_400
NOV_2025 = 1_762_000_000 + 9 * DAY  # 2025-11-10, pmp-2025-07 (UTC)
WABA_2, PHONE_2 = "310000000000002", "420000000000003"
WABA_3, PHONE_3 = "310000000000003", "420000000000004"

pytestmark = pytest.mark.redis


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "guard" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix, "config": write_config(tmp_path / "config")}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def delivered(n: int, t: int, category: str, waba: str = WABA, phone: str = PHONE,
              user: str | None = None, ptype: str | None = "regular",
              model: str = "PMP") -> Status:  # fmt: skip
    pair = Pair(waba, phone, user or f"55119{n:08d}")
    pricing = Pricing(ptype == "regular", model, category, ptype)
    return Status(pair, f"wamid.{n:04d}", "delivered", t, None, pricing)


def records(world: dict[str, Any], month: str, waba: str = WABA) -> list[dict[str, Any]]:
    found = Queries(world["client"], Keys(world["prefix"])).records(waba, month)
    return sorted(found, key=lambda r: (r["charge_time"], r["wamid"]))


def usage(world: dict[str, Any], month: str, waba: str = WABA) -> dict[str, Any]:
    return Queries(world["client"], Keys(world["prefix"])).usage(waba, month, "USD")


def write(world: dict[str, Any], name: str, text: str) -> None:
    (world["config"] / name).write_text(text)


# -- 1. volume tiers belong to the portfolio ------------------------------------------------------


def test_volume_tiers_count_every_waba_of_a_portfolio_together(world: dict[str, Any]) -> None:
    """Rule: tiers are counted per portfolio x market x category x month. Two WABAs of one
    portfolio share one count (units 1-5 across both: 0.0068, 0.0068, 0.0060, 0.0060, 0.0050);
    a WABA of another portfolio starts at the first tier."""
    write(world, "wabas.csv", "waba_id,currency,timezone,portfolio_id\n"
          f"{WABA},USD,UTC,portfolio-1\n{WABA_2},USD,UTC,portfolio-1\n"
          f"{WABA_3},USD,UTC,portfolio-2\n")  # fmt: skip
    events = [
        delivered(1, NOV_2025 + 1, "utility"),
        delivered(2, NOV_2025 + 2, "utility", WABA_2, PHONE_2),
        delivered(3, NOV_2025 + 3, "utility", WABA_2, PHONE_2),
        delivered(4, NOV_2025 + 4, "utility"),
        delivered(5, NOV_2025 + 5, "utility"),
        delivered(6, NOV_2025 + 6, "utility", WABA_3, PHONE_3),
    ]
    make_ledger(world["client"], world["prefix"], world["config"]).apply(events)
    both = records(world, "2025-11") + records(world, "2025-11", WABA_2)
    got = sorted((r["wamid"], r["tier"], r["cost"]) for r in both)
    assert got == [
        ("wamid.0001", "1:2", "0.0068"),
        ("wamid.0002", "1:2", "0.0068"),
        ("wamid.0003", "3:4", "0.0060"),
        ("wamid.0004", "3:4", "0.0060"),
        ("wamid.0005", "5:", "0.0050"),
    ]
    [other] = records(world, "2025-11", WABA_3)
    assert (other["tier"], other["cost"]) == ("1:2", "0.0068")
    assert usage(world, "2025-11")["total_cost"] == "0.0178"  # 0.0068 + 0.0060 + 0.0050
    assert usage(world, "2025-11", WABA_2)["total_cost"] == "0.0128"  # 0.0068 + 0.0060


# -- 2. records and usage agree, billed_cost included -------------------------------------------


def markup_run(world: dict[str, Any]) -> None:
    """Free and charged units of every kind, with a 10 % + 0.0001 markup:

    - wamid.0001 service in the CSW: free (free_customer_service);
    - wamid.0002 utility in the CSW: free (pmp-2025-07: free_customer_service);
    - wamid.0003..0007 utility outside it: tiers 0.0068, 0.0068, 0.0060, 0.0060, 0.0050;
    - wamid.0008, 0009 marketing: 0.0625 each;
    - wamid.0010 utility, Meta says free_customer_service (no window seen): free, Meta wins.
    """
    write(world, "markup.csv", f"waba_id,percent,fixed_per_unit\n{WABA},10,0.0001\n")
    user = "5511900000077"
    opened = Inbound(Pair(WABA, PHONE, user), "wamid.in", NOV_2025, "text", False)
    events: list[Event] = [
        opened,
        delivered(1, NOV_2025 + 60, "service", user=user, ptype="free_customer_service"),
        delivered(2, NOV_2025 + 120, "utility", user=user, ptype="free_customer_service"),
        *(delivered(n, NOV_2025 + 2 * DAY + n, "utility") for n in range(3, 8)),
        delivered(8, NOV_2025 + 3 * DAY, "marketing"),
        delivered(9, NOV_2025 + 3 * DAY + 1, "marketing"),
        delivered(10, NOV_2025 + 4 * DAY, "utility", ptype="free_customer_service"),
    ]
    make_ledger(world["client"], world["prefix"], world["config"]).apply(events)


def test_a_free_unit_carries_no_money_list_or_billed(world: dict[str, Any]) -> None:
    """Rule: cost and billed_cost are 0 when free; with a markup only charged units change."""
    markup_run(world)
    recs = {r["wamid"]: r for r in records(world, "2025-11")}
    assert len(recs) == 10
    free = {w for w, r in recs.items() if not r["billable"]}
    assert free == {"wamid.0001", "wamid.0002", "wamid.0010"}
    for wamid in free:
        assert (recs[wamid]["cost"], recs[wamid]["billed_cost"]) == ("0", "0"), wamid
    billed = {w: D(r["billed_cost"]) for w, r in recs.items() if r["billable"]}
    # by hand: rate x 1.10 + 0.0001
    assert billed == {
        "wamid.0003": D("0.00758"), "wamid.0004": D("0.00758"),
        "wamid.0005": D("0.00670"), "wamid.0006": D("0.00670"),
        "wamid.0007": D("0.00560"),
        "wamid.0008": D("0.06885"), "wamid.0009": D("0.06885"),
    }  # fmt: skip


def test_every_records_money_sums_to_its_usage_line_including_billed_cost(
    world: dict[str, Any],
) -> None:
    """Rule: usage totals are exact sums of the records, per line (category, market,
    billable, free reason, currency), for count, cost and billed_cost alike."""
    markup_run(world)
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, D(0), D(0)])
    for r in records(world, "2025-11"):
        line = sums[(r["category"], r["market"], r["billable"], r["free_reason"], r["currency"])]
        line[0] += 1
        line[1] += D(r["cost"])
        line[2] += D(r["billed_cost"])
    got = usage(world, "2025-11")
    lines = {
        (x["category"], x["market"], x["billable"], x["free_reason"], x["currency"]):
            [x["count"], D(x["cost"]), D(x["billed_cost"])]
        for x in got["lines"]
    }  # fmt: skip
    assert lines == dict(sums)
    # and the month, by hand: cost 2 x 0.0068 + 2 x 0.0060 + 0.0050 + 2 x 0.0625
    assert (got["units"], got["total_cost"]) == (10, "0.1556")
    assert D(got["total_billed_cost"]) == D("0.17186")  # 0.1556 x 1.10 + 7 x 0.0001


# -- 3. the claim ----------------------------------------------------------------------------------


def test_an_applied_event_is_refused_by_its_claim_even_after_its_pair_state_expired(
    world: dict[str, Any],
) -> None:
    """Rule: every event is claimed in the same call that applies it, for DEDUP_TTL_DAYS.

    Here the pair's state expires (PAIR_HORIZON below DEDUP_TTL) before Meta redelivers the
    status: only the claim still knows it was billed. It must stay one unit, one charge."""
    config = LedgerConfig(dedup_ttl=8 * DAY, pair_horizon=1, records_retention=400 * DAY,
                          feed_maxlen=10_000)  # fmt: skip
    keys = Keys(world["prefix"])
    ledger = Ledger(world["client"], keys, load_ratebook(world["config"]), config, small_book(3))
    status = delivered(1, NOV_2025, "marketing")
    first = ledger.apply([status])
    assert (first.applied, first.records) == (1, 1)
    pair_key = keys.pair(status.pair)
    deadline = time.monotonic() + 10
    while world["client"].exists(pair_key):  # the pair's TTL is one second
        assert time.monotonic() < deadline, "the pair state never expired"
        time.sleep(0.05)
    again = ledger.apply([status])  # Meta redelivers it
    assert (again.applied, again.duplicates, again.records) == (0, 1, 0)
    [rec] = records(world, "2025-11")
    assert (rec["version"], rec["cost"]) == (1, "0.0625")
    assert (usage(world, "2025-11")["units"], usage(world, "2025-11")["total_cost"]) == (
        1,
        "0.0625",
    )


# -- 4. tier bounds ----------------------------------------------------------------------------


BOUNDS = [  # (k, tier label, rate) for the tiers (0, 2], (2, 4], (4, open)
    (1, "1:2", "0.0068"),
    (2, "1:2", "0.0068"),  # exactly at the first bound: still the first tier
    (3, "3:4", "0.0060"),  # just past it
    (4, "3:4", "0.0060"),  # exactly at the second bound
    (5, "5:", "0.0050"),  # just past it
    (6, "5:", "0.0050"),
]


def test_the_unit_at_a_tier_bound_is_in_the_lower_tier_and_the_next_in_the_higher(
    world: dict[str, Any],
) -> None:
    """Rule: the k-th charged message is in the tier ``from < k <= to``; checked for k at and
    just past each bound through the ledger, a quote of the next message before each one is
    delivered, and a re-rating of the month (which must change nothing)."""
    ratebook = load_ratebook(world["config"])
    keys = Keys(world["prefix"])
    ledger = make_ledger(world["client"], world["prefix"], world["config"])
    quoter = Quoter(world["client"], keys, ratebook, small_book(3))
    for k, label, rate in BOUNDS:
        at = NOV_2025 + 10 * k
        q = quoter.quote(WABA, PHONE, f"55119{k:08d}", "utility", True, at)
        assert (q["volume"]["position"], q["tier"], q["cost"]) == (k, label, rate), k
        ledger.apply([delivered(k, at, "utility")])
    got = [(r["tier"], r["cost"]) for r in records(world, "2025-11")]
    assert got == [(label, rate) for _, label, rate in BOUNDS]
    assert Rerater(world["client"], keys, ratebook, 10_000).rerate("2025-11").changed == 0
    assert [(r["tier"], r["cost"]) for r in records(world, "2025-11")] == got
    assert usage(world, "2025-11")["total_cost"] == "0.0356"  # 2x0.0068 + 2x0.0060 + 2x0.0050


# -- 5. the shipped allowances -----------------------------------------------------------------


def shipped_ledger(world: dict[str, Any]) -> Ledger:
    """A ledger with the shipped policy book (the real 1,000-unit allowances)."""
    config = LedgerConfig(dedup_ttl=8 * DAY, pair_horizon=10 * DAY,
                          records_retention=400 * DAY, feed_maxlen=10_000)  # fmt: skip
    return Ledger(world["client"], Keys(world["prefix"]), load_ratebook(world["config"]), config)


@pytest.mark.parametrize(
    ("moment", "category", "model", "month", "policy", "rate"),
    [
        pytest.param(1_654_041_600 + 2 * DAY, "business_initiated", "CBP", "2022-06", "cbp-2022",
                     "0.0500", id="cbp-2022-per-waba"),
        pytest.param(1_700_000_000 - 10 * DAY, "service", "CBP", "2023-11", "cbp-2023",
                     "0.0068", id="cbp-2023-service-per-waba"),
        pytest.param(1_790_812_800 + 5 * DAY, "service", "PMP", "2026-10", "pmp-2026-10",
                     "0.0068", id="pmp-2026-10-service-per-number"),
    ],
)  # fmt: skip
def test_shipped_allowance_1000th_unit_is_free_and_the_1001st_is_charged(
    world: dict[str, Any], moment: int, category: str, model: str, month: str, policy: str,
    rate: str,
) -> None:  # fmt: skip
    """Rule: 1,000 free units per month (cbp-2022: conversations per WABA; cbp-2023: service
    conversations per WABA; pmp-2026-10: service messages per business number), with the
    policy book as shipped."""
    # pmp-2026-10: Meta's free-tier answer would win over the place (rule book 9.3); Meta is
    # silent here, so the place decides
    ptype = None if policy == "pmp-2026-10" else "regular"
    shipped_ledger(world).apply(
        [delivered(n, moment + n, category, model=model, ptype=ptype) for n in range(1, 1002)]
    )
    recs = records(world, month)
    assert {r["policy"] for r in recs} == {policy}
    assert len(recs) == 1001
    assert [r["free_reason"] for r in recs[998:]] == ["free_tier", "free_tier", None]
    assert (recs[999]["cost"], recs[1000]["cost"]) == ("0", rate)
    got = usage(world, month)
    assert (got["units"], got["total_cost"]) == (1001, rate)


# -- 6. re-rating leaves void units void -----------------------------------------------------------


def test_rerating_keeps_a_void_unit_void_and_out_of_usage(world: dict[str, Any]) -> None:
    """Rule: a unit a later event showed not to exist stays void (kept for the audit trail,
    never counted or charged), also when the month is re-rated after a rate change.

    cbp-2023: a marketing template opens a conversation; a late template of the same user and
    category delivered an hour before it opens the conversation instead, and the first unit
    is voided. Re-rating at a corrected price reprices the live unit only."""
    moment = 1_700_000_000 - 10 * DAY  # 2023-11, cbp-2023
    user = "5511900000055"
    ledger = make_ledger(world["client"], world["prefix"], world["config"])
    ledger.apply([delivered(2, moment + 5 * 3_600, "marketing", user=user, model="CBP")])
    ledger.apply([delivered(1, moment + 3_600, "marketing", user=user, model="CBP")])
    keys = Keys(world["prefix"])
    stored = [r for r in records(world, "2023-11")]
    assert sorted((r["wamid"], r["void"]) for r in stored) == [
        ("wamid.0001", False),
        ("wamid.0002", True),
    ]
    assert (usage(world, "2023-11")["units"], usage(world, "2023-11")["total_cost"]) == (
        1,
        "0.0625",
    )
    rates = world["config"] / "rates.csv"
    rates.write_text(rates.read_text().replace("marketing,0.0625", "marketing,0.0600"))
    rerater = Rerater(world["client"], keys, load_ratebook(world["config"]), 10_000)
    assert rerater.rerate("2023-11").changed == 1
    after = {r["wamid"]: r for r in records(world, "2023-11")}
    assert (after["wamid.0002"]["void"], after["wamid.0002"]["cost"]) == (True, "0")
    assert (
        after["wamid.0002"]["version"] == {r["wamid"]: r for r in stored}["wamid.0002"]["version"]
    )
    assert (usage(world, "2023-11")["units"], usage(world, "2023-11")["total_cost"]) == (
        1,
        "0.0600",
    )


def test_rerating_one_waba_rerates_its_whole_portfolio_and_keeps_free_units_free(
    world: dict[str, Any],
) -> None:
    """Rule: tiers are counted per portfolio, so re-rating one WABA re-rates every WABA of its
    portfolio (and no other); a free unit gets the new list rate but stays free (cost 0)."""
    write(world, "wabas.csv", "waba_id,currency,timezone,portfolio_id\n"
          f"{WABA},USD,UTC,portfolio-1\n{WABA_2},USD,UTC,portfolio-1\n"
          f"{WABA_3},USD,UTC,portfolio-2\n")  # fmt: skip
    user = "5511900000066"
    make_ledger(world["client"], world["prefix"], world["config"]).apply(
        [
            delivered(1, NOV_2025 + 1, "marketing"),
            delivered(2, NOV_2025 + 2, "marketing", WABA_2, PHONE_2),
            delivered(3, NOV_2025 + 3, "marketing", WABA_3, PHONE_3),
            Inbound(Pair(WABA, PHONE, user), "wamid.in", NOV_2025, "text", False),
            delivered(4, NOV_2025 + 60, "service", user=user, ptype="free_customer_service"),
        ]
    )
    rates = world["config"] / "rates.csv"
    text = rates.read_text().replace("marketing,0.0625", "marketing,0.0600")
    rates.write_text(text.replace("service,0.0068", "service,0.0070"))
    rerater = Rerater(world["client"], Keys(world["prefix"]), load_ratebook(world["config"]),
                      10_000)  # fmt: skip
    result = rerater.rerate("2025-11", WABA)
    assert (result.month, result.wabas, result.records, result.changed) == (
        "2025-11",
        [WABA, WABA_2],
        3,
        3,
    )
    assert result.totals_before == {WABA: "0.0625", WABA_2: "0.0625"}
    assert result.totals_after == {WABA: "0.0600", WABA_2: "0.0600"}
    free = {r["wamid"]: r for r in records(world, "2025-11")}["wamid.0004"]
    assert (free["billable"], free["rate"], free["cost"], free["billed_cost"]) == (
        False,
        "0.0070",
        "0",
        "0",
    )
    assert usage(world, "2025-11", WABA_3)["total_cost"] == "0.0625"  # another portfolio
    assert usage(world, "2025-11")["units"] == 2


# -- 7. copies of one status merge field by field -------------------------------------------------


@pytest.mark.parametrize("priced_first", [True, False], ids=["priced-first", "bare-first"])
def test_a_status_seen_twice_keeps_every_field_either_copy_carried(
    world: dict[str, Any], priced_first: bool
) -> None:
    """Rule: the history is a set of facts; two copies of one status (here a ``delivered``
    with Meta's pricing, and one without) merge to the earliest time and every known field, in
    either order: the message is priced as marketing, once, at the earlier time."""
    priced = delivered(1, NOV_2025 + 5, "marketing")
    bare = Status(priced.pair, priced.wamid, "delivered", NOV_2025 + 2, None, None)
    ledger = make_ledger(world["client"], world["prefix"], world["config"])
    for event in [priced, bare] if priced_first else [bare, priced]:
        ledger.apply([event])
    [rec] = records(world, "2025-11")
    assert (rec["category"], rec["cost"], rec["charge_time"]) == (
        "marketing",
        "0.0625",
        "2025-11-10T12:26:42Z",
    )
    assert (usage(world, "2025-11")["units"], usage(world, "2025-11")["total_cost"]) == (
        1,
        "0.0625",
    )


def test_a_quote_counts_the_allowance_up_to_its_last_free_unit(world: dict[str, Any]) -> None:
    """Rule: the first ``limit`` service messages of the month per business number are free
    (pmp-2026-10; limit cut to 2 here): with 1 used the next is the last free one, with 2 used
    the next is charged at the list rate; the quote says so with every money field."""
    moment = 1_790_812_800 + 5 * DAY  # October 2026
    user = "5511900000088"
    keys = Keys(world["prefix"])
    ledger = make_ledger(world["client"], world["prefix"], world["config"], limit=2)
    quoter = Quoter(world["client"], keys, load_ratebook(world["config"]), small_book(2))
    opened = Inbound(Pair(WABA, PHONE, user), "wamid.in", moment, "text", False)
    ledger.apply([opened, delivered(1, moment + 60, "service", user=user, ptype="regular")])
    second = quoter.quote(WABA, PHONE, user, "service", False, moment + 120)
    assert (second["allowance"], second["free_reason"], second["cost"]) == (
        {"limit": 2, "used": 1, "left": 1},
        "free_tier",
        "0",
    )
    ledger.apply([delivered(2, moment + 120, "service", user=user, ptype="regular")])
    third = quoter.quote(WABA, PHONE, user, "service", False, moment + 180)
    assert {k: third[k] for k in ("allowance", "billable", "free_reason", "rate", "cost",
                                  "billed_rate", "billed_cost", "category", "policy")} == {
        "allowance": {"limit": 2, "used": 2, "left": 0},
        "billable": True,
        "free_reason": None,
        "rate": "0.0068",
        "cost": "0.0068",
        "billed_rate": "0.0068",
        "billed_cost": "0.0068",
        "category": "service",
        "policy": "pmp-2026-10",
    }  # fmt: skip
    ledger.apply([delivered(3, moment + 180, "service", user=user, ptype="regular")])
    [*_, charged] = records(world, "2026-10")
    assert (charged["wamid"], charged["cost"]) == ("wamid.0003", third["cost"])

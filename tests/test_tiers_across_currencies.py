"""Volume tiers across currencies and dated tier rows (issue 9 item 2).

Tiers count per portfolio x market x category x month across every WABA of the portfolio,
whatever its currency; each unit is priced from the tier table of its OWN WABA's currency in
force on its OWN charge date. The expected money is computed here independently (the k-th
message rule), never by the code under test.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Event, Pair, Pricing, Status
from processor.store.keys import Keys
from processor.store.queries import Queries
from processor.store.rerate import Rerater
from tests.ledger_helpers import make_ledger

DAY = 86_400
NOV = int(datetime(2025, 11, 1, tzinfo=UTC).timestamp())
USD_WABA, INR_WABA = "310000000000011", "310000000000012"
PHONES = {USD_WABA: "420000000000011", INR_WABA: "420000000000012"}
CHANGE = date(2025, 11, 20)  # the USD tier table changes inside the month

# (currency, effective_from) -> [(from_volume, to_volume, rate)]
TABLES: dict[tuple[str, date], list[tuple[int, int | None, str]]] = {
    ("USD", date(2025, 7, 1)): [(0, 2, "0.0100"), (2, 5, "0.0090"), (5, None, "0.0080")],
    ("USD", CHANGE): [(0, 2, "0.0200"), (2, 5, "0.0180"), (5, None, "0.0160")],
    ("INR", date(2025, 7, 1)): [(0, 3, "1.0000"), (3, 4, "0.9000"), (4, None, "0.8000")],
}


def write_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "markets.csv").write_text("effective_from,country,market\n2020-01-01,IN,India\n")
    (directory / "rates.csv").write_text(
        "effective_from,market,currency,category,rate\n"
        "2025-07-01,India,USD,authentication,0.0100\n"
        "2025-07-01,India,INR,authentication,1.0000\n"
    )
    rows = ["effective_from,market,currency,category,from_volume,to_volume,rate"]
    for (currency, since), table in TABLES.items():
        for low, high, rate in table:
            rows.append(f"{since},India,{currency},authentication,{low},{high or ''},{rate}")
    (directory / "tiers.csv").write_text("\n".join(rows) + "\n")
    (directory / "wabas.csv").write_text(
        "waba_id,currency,timezone,portfolio_id\n"
        f"{USD_WABA},USD,UTC,portfolio-1\n{INR_WABA},INR,UTC,portfolio-1\n"
    )
    return directory


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "tiers" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix, "config": write_config(tmp_path / "config")}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def delivered(n: int, waba: str, at: int) -> Status:
    pair = Pair(waba, PHONES[waba], f"9198{n:08d}")
    return Status(pair, f"wamid.{n:04d}", "delivered", at, None,
                  Pricing(True, "PMP", "authentication"))  # fmt: skip


def apply(world: dict[str, Any], events: list[Event]) -> None:
    ledger = make_ledger(world["client"], world["prefix"], world["config"], limit=1000)
    for event in events:  # one at a time: every arrival shifts the places behind it
        ledger.apply([event])


def expected(events: list[Status]) -> dict[str, tuple[str, Decimal]]:
    """wamid -> (currency, rate) by the k-th message rule, from TABLES directly."""
    out = {}
    ordered = sorted(events, key=lambda e: e.timestamp)
    for k, event in enumerate(ordered, 1):
        currency = "USD" if event.pair.waba_id == USD_WABA else "INR"
        day = datetime.fromtimestamp(event.timestamp, UTC).date()
        since = max(d for (c, d) in TABLES if c == currency and d <= day)
        rate = next(r for low, high, r in TABLES[(currency, since)]
                    if low < k and (high is None or k <= high))  # fmt: skip
        out[event.wamid] = (currency, Decimal(rate))
    return out


def booked(world: dict[str, Any]) -> dict[str, tuple[str, Decimal]]:
    queries = Queries(world["client"], Keys(world["prefix"]))
    out = {}
    for waba in (USD_WABA, INR_WABA):
        for rec in queries.records(waba, "2025-11"):
            assert rec["cost"] == rec["rate"]
            out[rec["wamid"]] = (rec["currency"], Decimal(rec["cost"]))
    return out


def totals(found: dict[str, tuple[str, Decimal]]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = {}
    for currency, rate in found.values():
        sums[currency] = sums.get(currency, Decimal(0)) + rate
    return sums


def interleaved() -> list[Status]:
    """Eleven deliveries alternating WABAs across every bound of both tables, some after the
    USD table changes."""
    wabas = [USD_WABA, INR_WABA, INR_WABA, USD_WABA, INR_WABA, USD_WABA, USD_WABA, INR_WABA,
             USD_WABA, INR_WABA, USD_WABA]  # fmt: skip
    times = [NOV + (n + 1) * DAY for n in range(len(wabas))]
    times[-3:] = [int(datetime(2025, 11, 21 + i, tzinfo=UTC).timestamp()) for i in range(3)]
    return [delivered(n, waba, at) for n, (waba, at) in enumerate(zip(wabas, times, strict=True))]


def test_usd_and_inr_wabas_of_one_portfolio_in_delivery_order(world: dict[str, Any]) -> None:
    events = interleaved()
    apply(world, list(events))
    assert booked(world) == expected(events)


def test_usd_and_inr_wabas_of_one_portfolio_in_reverse_arrival_order(
    world: dict[str, Any],
) -> None:
    """Every arrival is late: it shifts every unit already booked one place back."""
    events = interleaved()
    apply(world, list(reversed(events)))
    got = booked(world)
    assert got == expected(events)
    assert totals(got) == totals(expected(events))
    rerater = Rerater(world["client"], Keys(world["prefix"]), load_ratebook(world["config"]), 100)
    assert rerater.rerate("2025-11", USD_WABA).changed == 0  # rerate prices by the same rule
    assert booked(world) == got


@pytest.mark.parametrize("seed", range(4))
def test_usd_and_inr_wabas_of_one_portfolio_in_shuffled_arrival_orders(
    world: dict[str, Any], seed: int
) -> None:
    events = interleaved()
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    apply(world, shuffled)
    assert booked(world) == expected(events)


def test_a_usd_unit_is_never_priced_with_inr_rows(world: dict[str, Any]) -> None:
    """The regression of the issue: the bucket's last booking (INR) no longer prices USD units
    that a late event shifts."""
    events = [delivered(1, USD_WABA, NOV + DAY), delivered(2, USD_WABA, NOV + 2 * DAY)]
    apply(world, events)
    late = delivered(3, INR_WABA, NOV + 10)  # before both: they move to places 2 and 3
    apply(world, [late])
    got = booked(world)
    assert got["wamid.0003"] == ("INR", Decimal("1.0000"))
    assert got["wamid.0001"] == ("USD", Decimal("0.0100"))  # place 2: USD first tier (..2]
    assert got["wamid.0002"] == ("USD", Decimal("0.0090"))  # place 3: USD second tier


def test_a_tier_table_that_changes_inside_the_month_prices_each_unit_by_its_own_date(
    world: dict[str, Any],
) -> None:
    """No rerate needed: units before 2025-11-20 keep the old table, later ones the new."""
    before = [delivered(n, USD_WABA, NOV + n * DAY) for n in range(1, 4)]  # places 1..3
    after = [delivered(n, USD_WABA, int(datetime(2025, 11, 20 + n, tzinfo=UTC).timestamp()))
             for n in range(4, 7)]  # places 4..6  # fmt: skip
    apply(world, [*after, *before])
    got = booked(world)
    assert [got[f"wamid.{n:04d}"][1] for n in range(1, 7)] == [
        Decimal(x) for x in ("0.0100", "0.0100", "0.0090", "0.0180", "0.0180", "0.0160")
    ]
    assert got == expected([*before, *after])


def test_usage_of_each_waba_is_in_its_own_currency(world: dict[str, Any]) -> None:
    events = interleaved()
    apply(world, events)
    queries = Queries(world["client"], Keys(world["prefix"]))
    want = expected(events)
    for waba, currency in ((USD_WABA, "USD"), (INR_WABA, "INR")):
        usage = queries.usage(waba, "2025-11", currency)
        own = [rate for w, (c, rate) in want.items() if c == currency]
        assert Decimal(usage["total_cost"]) == sum(own, Decimal(0))

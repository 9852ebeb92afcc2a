"""A WABA's billing currency can change on a date (issue 9 item 6): wabas.csv takes dated
currency rows; each unit is priced in the currency in force on its charge date; a month with two
currencies has a total per currency in /v1/usage, the report and the export."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Pair, Pricing, Status
from processor.meta_files import META_CURRENCIES
from processor.reports import print_usage
from processor.store.keys import Keys
from processor.store.queries import Queries
from tests.ledger_helpers import make_ledger

WABA, PHONE = "310000000000031", "420000000000031"
SWITCH = date(2026, 12, 15)


def write_config(directory: Path, wabas: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "markets.csv").write_text("effective_from,country,market\n2020-01-01,IN,India\n")
    (directory / "rates.csv").write_text(
        "effective_from,market,currency,category,rate,source\n"
        "2026-10-01,India,USD,marketing,0.0118,Meta USD card\n"
        "2026-10-01,India,INR,marketing,0.8631,Meta INR card\n"
    )
    (directory / "wabas.csv").write_text(wabas)
    return directory


DATED = (
    "waba_id,currency,timezone,portfolio_id,effective_from\n"
    f"{WABA},USD,Asia/Kolkata,,\n"
    f"{WABA},INR,Asia/Kolkata,,{SWITCH}\n"
)


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "cur" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix, "config": write_config(tmp_path / "c", DATED)}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def delivered(n: int, when: datetime) -> Status:
    pair = Pair(WABA, PHONE, f"9198{n:08d}")
    at = int(when.timestamp())
    return Status(pair, f"wamid.c{n}", "delivered", at, None, Pricing(True, "PMP", "marketing"))


def test_each_unit_is_priced_in_the_currency_in_force_on_its_local_charge_date(
    world: dict[str, Any],
) -> None:
    # 2026-12-14T19:00Z is 2026-12-15 00:30 in Kolkata: already INR
    events = [
        delivered(1, datetime(2026, 12, 14, 18, 0, tzinfo=UTC)),  # 23:30 local: USD
        delivered(2, datetime(2026, 12, 14, 19, 0, tzinfo=UTC)),  # 00:30 local: INR
        delivered(3, datetime(2026, 12, 20, 9, 0, tzinfo=UTC)),
    ]
    make_ledger(world["client"], world["prefix"], world["config"]).apply(events)
    queries = Queries(world["client"], Keys(world["prefix"]))
    got = sorted((r["wamid"], r["currency"], r["cost"]) for r in queries.records(WABA, "2026-12"))
    assert got == [("wamid.c1", "USD", "0.0118"), ("wamid.c2", "INR", "0.8631"),
                   ("wamid.c3", "INR", "0.8631")]  # fmt: skip
    usage = queries.usage(WABA, "2026-12", "USD")
    assert usage["currency"] == "mixed"
    assert usage["total_cost"] is None  # amounts in two currencies are never added
    assert usage["totals"] == {
        "INR": {"cost": "1.7262", "billed_cost": "1.7262", "units": 2, "unrated_units": 0},
        "USD": {"cost": "0.0118", "billed_cost": "0.0118", "units": 1, "unrated_units": 0},
    }
    out = io.StringIO()
    print_usage(usage, "table", out)
    assert "total cost 1.7262 INR" in out.getvalue()
    assert "total cost 0.0118 USD" in out.getvalue()


def test_a_month_with_one_currency_keeps_its_total(world: dict[str, Any]) -> None:
    make_ledger(world["client"], world["prefix"], world["config"]).apply(
        [delivered(4, datetime(2026, 11, 5, tzinfo=UTC))]
    )
    usage = Queries(world["client"], Keys(world["prefix"])).usage(WABA, "2026-11", "USD")
    assert (usage["currency"], usage["total_cost"]) == ("USD", "0.0118")
    assert usage["totals"] == {
        "USD": {"cost": "0.0118", "billed_cost": "0.0118", "units": 1, "unrated_units": 0}
    }


def test_the_ratebook_reads_dated_currency_rows(tmp_path: Path) -> None:
    book = load_ratebook(write_config(tmp_path, DATED))
    waba = book.waba(WABA)
    assert waba.currency_on(date(2026, 12, 14)) == "USD"
    assert waba.currency_on(SWITCH) == "INR"
    assert waba.currencies == ("USD", "INR")


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        pytest.param(
            f"{WABA},USD,UTC,,\n{WABA},INR,Asia/Kolkata,,2027-01-01\n",
            "wabas.csv:3:3: timezone differs from line 2",
            id="timezone-changes",
        ),
        pytest.param(
            f"{WABA},USD,UTC,,2027-01-01\n{WABA},INR,UTC,,2027-01-01\n",
            "wabas.csv:3:1: overlapping dates",
            id="two-rows-one-date",
        ),
        pytest.param(
            f"{WABA},USD,UTC,,\n{WABA},INR,UTC,,\n",
            "wabas.csv:3:1: duplicate waba_id",
            id="two-undated-rows",
        ),
        pytest.param(
            f"{WABA},USD,UTC,,\n{WABA},BRL,UTC,,2027-07-01\n",
            "wabas.csv:3:2: no rates in currency 'BRL'",
            id="currency-without-rates",
        ),
    ],
)
def test_bad_dated_currency_rows_are_refused_with_their_place(
    tmp_path: Path, rows: str, problem: str
) -> None:
    from processor.errors import SettingsError

    write_config(tmp_path, "waba_id,currency,timezone,portfolio_id,effective_from\n" + rows)
    with pytest.raises(SettingsError) as caught:
        load_ratebook(tmp_path)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("currency", sorted(META_CURRENCIES))
def test_all_16_of_metas_billing_currencies_are_accepted(tmp_path: Path, currency: str) -> None:
    write_config(tmp_path, f"waba_id,currency,timezone,portfolio_id\n{WABA},{currency},UTC,\n")
    rates = tmp_path / "rates.csv"
    rates.write_text(rates.read_text() + f"2026-10-01,India,{currency},utility,1.0000,x\n")
    assert load_ratebook(tmp_path).waba(WABA).currency == currency
    assert len(META_CURRENCIES) == 16


def test_the_export_states_a_total_per_currency(world: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from processor.reports import export_totals

    make_ledger(world["client"], world["prefix"], world["config"]).apply(
        [
            delivered(5, datetime(2026, 12, 1, 9, tzinfo=UTC)),
            delivered(6, datetime(2026, 12, 20, 9, tzinfo=UTC)),
        ]
    )
    queries = Queries(world["client"], Keys(world["prefix"]))
    ctx = SimpleNamespace(queries=queries, ratebook=load_ratebook(world["config"]))
    assert export_totals(ctx, "2026-12", None) == [  # type: ignore[arg-type]
        f"WABA {WABA} 2026-12: total cost 0.8631 INR, billed 0.8631 INR, 1 units",
        f"WABA {WABA} 2026-12: total cost 0.0118 USD, billed 0.0118 USD, 1 units",
    ]

"""The rates shipped in config/ are Meta's published list prices, each row with its source
(issue 9 item 5), and price the two acceptance examples through the real apply script."""

from __future__ import annotations

import csv
import secrets
import statistics
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Pair, Pricing, Status
from processor.meta_files import read
from processor.store.keys import Keys
from processor.store.queries import Queries
from tests.ledger_helpers import make_ledger

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config"
FILES = Path(__file__).parent / "data" / "meta-files"
WABA, PHONE = "310000000000021", "420000000000021"
JUL_15 = int(datetime(2026, 7, 15, 12, tzinfo=UTC).timestamp())


def rows(name: str) -> list[dict[str, str]]:
    lines = [x for x in (SHIPPED / name).read_text().splitlines() if x and not x.startswith("#")]
    return list(csv.DictReader(lines))


@pytest.fixture
def world(redis_url: str) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "shipped" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def delivered(n: int, user: str, category: str, at: int) -> Status:
    pair = Pair(WABA, PHONE, user)
    return Status(pair, f"wamid.s{n}", "delivered", at, None, Pricing(True, "PMP", category))


@pytest.mark.parametrize(
    ("user", "category", "rate"),
    [
        pytest.param("919876543210", "marketing", "0.0118", id="+91-marketing"),
        pytest.param("5511987654321", "utility", "0.0068", id="+55-utility"),
    ],
)
def test_acceptance_examples_cost_metas_published_usd_rates(
    world: dict[str, Any], user: str, category: str, rate: str
) -> None:
    ledger = make_ledger(world["client"], world["prefix"], SHIPPED, limit=1000)
    ledger.apply([delivered(1, user, category, JUL_15)])
    [rec] = Queries(world["client"], Keys(world["prefix"])).records(WABA, "2026-07")
    assert (rec["currency"], rec["cost"], rec["billable"]) == ("USD", rate, True)
    market = "India" if user.startswith("91") else "Brazil"
    [row] = [r for r in rows("rates.csv") if (r["effective_from"], r["market"], r["currency"],
             r["category"]) == ("2026-07-01", market, "USD", category)]  # fmt: skip
    assert row["rate"] == rate
    digest = "9aa0fcb64bd1455aa010b5738a3eca90d290f09ae1a71a153d0d148348408ffa"
    assert row["source"] == f"Meta USD rates CSV effective 2026-07-01 (download sha256:{digest})"


def test_a_unit_no_public_source_prices_stays_unrated_and_counted(world: dict[str, Any]) -> None:
    at = int(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp())  # no public card for 2026-03
    make_ledger(world["client"], world["prefix"], SHIPPED).apply(
        [delivered(2, "919876543210", "marketing", at)]
    )
    queries = Queries(world["client"], Keys(world["prefix"]))
    [rec] = queries.records(WABA, "2026-03")
    assert rec["billable"] and rec["cost"] is None and rec["rate"] is None
    usage = queries.usage(WABA, "2026-03", "USD")
    assert usage["unrated_units"] == 1
    assert usage["unrated"] == [
        {"category": "marketing", "market": "India", "currency": "USD", "count": 1}
    ]


@pytest.mark.parametrize("name", ["rates.csv", "tiers.csv"])
def test_every_shipped_row_names_its_source(name: str) -> None:
    found = rows(name)
    assert found and all(r["source"].strip() for r in found)
    assert all(r["source"].startswith("Meta ") for r in found)


@pytest.mark.parametrize(
    ("fixture", "currency"),
    [("usd-rates-2026-07-01.csv", "USD"), ("cop-rates-2026-07-01.csv", "COP")],
)
def test_the_july_2026_cards_are_metas_files_row_for_row(fixture: str, currency: str) -> None:
    meta = read(fixture, (FILES / fixture).read_bytes())
    want = {(c.market, c.category): c.rate for c in meta.rates}
    got = {(r["market"], r["category"]): Decimal(r["rate"]) for r in rows("rates.csv")
           if r["effective_from"] == "2026-07-01" and r["currency"] == currency}  # fmt: skip
    assert got == want


@pytest.mark.parametrize("day", ["2026-07-01", "2026-10-01"])
def test_the_cop_card_is_the_usd_card_at_one_exchange_rate(day: str) -> None:
    """Cross-check of two cards: every COP figure is its USD figure times one rate (to the 4
    decimals Meta rounds to); a mistyped row would stand out."""
    card = [r for r in rows("rates.csv") if r["effective_from"] == day]
    usd = {(r["market"], r["category"]): Decimal(r["rate"]) for r in card if r["currency"] == "USD"}
    cop = {(r["market"], r["category"]): Decimal(r["rate"]) for r in card if r["currency"] == "COP"}
    assert usd.keys() == cop.keys()
    fx = Decimal(statistics.median(cop[k] / usd[k] for k in usd))
    for key, value in usd.items():
        assert abs(cop[key] - value * fx) <= Decimal("0.00005") * fx + Decimal("0.0001"), key


def test_the_october_2026_usd_card_has_metas_47_markets_and_its_regularities() -> None:
    """Utility = authentication = service in every row of Meta's 2026-10-01 card; the markets
    that moved on 2026-10-01 are there; the unchanged rows equal the July card."""
    octo = [r for r in rows("rates.csv") if (r["effective_from"], r["currency"])
            == ("2026-10-01", "USD")]  # fmt: skip
    by = {(r["market"], r["category"]): Decimal(r["rate"]) for r in octo}
    markets = {m for m, _ in by}
    assert len(markets) == 47
    assert {"Bangladesh", "Iraq", "Kazakhstan", "Kuwait", "Morocco", "Nepal", "Oman",
            "Sri Lanka", "Ukraine"} <= markets  # fmt: skip
    for m in markets:
        assert by[(m, "utility")] == by[(m, "authentication")] == by[(m, "service")], m
    assert by[("India", "marketing")] == Decimal("0.0118")  # = meta-webhooks.md 4.3 (S7)
    assert by[("Rest of Central & Eastern Europe", "utility")] == Decimal("0.0212")  # = S7


def test_a_rate_is_used_from_its_date_in_the_shipped_config() -> None:
    book = load_ratebook(SHIPPED)
    assert book.rate("Mexico", "marketing", "USD", date(2026, 9, 30)) == Decimal("0.0305")
    assert book.rate("Mexico", "marketing", "USD", date(2026, 10, 1)) == Decimal("0.0397")
    assert book.rate("India", "service", "USD", date(2026, 9, 30)) is None  # n/a: free then


def test_every_shipped_tier_table_starts_at_the_list_rate_of_its_card() -> None:
    """Cross-check of the tier cells against the rate card of the same date."""
    rates = {(r["effective_from"], r["market"], r["currency"], r["category"]): r["rate"]
             for r in rows("rates.csv")}  # fmt: skip
    firsts = [r for r in rows("tiers.csv") if r["from_volume"] == "0"]
    assert len({r["market"] for r in firsts}) == 12
    for r in firsts:
        key = (r["effective_from"], r["market"], r["currency"], r["category"])
        assert Decimal(rates[key]) == Decimal(r["rate"]), key


def test_india_utility_tiers_carry_metas_own_label() -> None:
    """Meta's webhook example for India utility is tier "25000001:50000000"."""
    tiers = load_ratebook(SHIPPED).tiers("India", "utility", "USD", date(2026, 10, 1))
    assert [t.label for t in tiers][:2] == ["1:25000000", "25000001:50000000"]

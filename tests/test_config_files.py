"""Loading config/: the shipped example loads; every malformed file is refused with its place."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from processor.config_files import MARKETS, TIERS, load_ratebook, read_table
from processor.core.policies import (
    AUTH_INTL,
    GENERAL_PURPOSE_AI,
    MARKETING_LITE,
    POLICIES,
    REFERRAL,
)
from processor.core.rating import RateBook, country_of
from processor.errors import SettingsError

SHIPPED = Path(__file__).resolve().parent.parent / "config"

MINIMAL = {
    "markets.csv": "effective_from,country,market\n2022-01-01,IN,India\n",
    "rates.csv": "effective_from,market,currency,category,rate\n"
    "2025-07-01,India,USD,utility,0.0014\n",
}
TIERS_HEADER = "effective_from,market,currency,category,from_volume,to_volume,rate\n"
RATES_HEADER = "effective_from,market,currency,category,rate\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in {**MINIMAL, **files}.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_ratebook(directory)
    return caught.value.problems


# -- the shipped example ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RateBook:
    return load_ratebook(SHIPPED)


@pytest.mark.parametrize("day", [date(2026, 7, 15), date(2026, 10, 1)], ids=str)
@pytest.mark.parametrize(("country", "market"), [("BR", "Brazil"), ("IN", "India")])
def test_shipped_config_loads_without_problems(
    shipped: RateBook, day: date, country: str, market: str
) -> None:
    """config/ as shipped makes the processor work out of the box: it loads (load_ratebook
    raises on any problem) and prices every template category for users in large markets with
    a positive USD rate, in both per-message eras (on the published cards shipped)."""
    assert shipped.market(country, day) == market
    for category in ("marketing", "utility", "authentication"):
        rate = shipped.rate(market, category, "USD", day)
        assert rate is not None and rate > 0, (market, category, day)


def _countries() -> set[str]:
    problems: list[str] = []
    rows = read_table(SHIPPED, MARKETS, problems)
    return {row.cells["country"] for row in rows}


def _card_days() -> list[date]:
    """Days covered by the published cards shipped (2026-07-01 on): first days, the day before
    a move, and a late day."""
    return [date(2026, 7, 1), date(2026, 9, 30), date(2026, 10, 1), date(2026, 12, 31)]


@pytest.mark.parametrize("day", _card_days(), ids=str)
def test_shipped_rates_price_every_market_on_every_published_card(
    shipped: RateBook, day: date
) -> None:
    """Every country's market has a USD rate for each category its era charges (issue 9: from
    Meta's published cards; service is priced from 2026-10-01, free before)."""
    policy = max((p for p in POLICIES if p.starts <= day), key=lambda p: p.starts)
    # general_purpose_ai: Meta publishes no rate; priced only where configured (rule book 10)
    charged = policy.categories - {AUTH_INTL, MARKETING_LITE, GENERAL_PURPOSE_AI}
    charged -= policy.free_categories
    markets = {shipped.market(c, day) for c in _countries()} | {"Other"}
    missing = [
        (market, category)
        for market in sorted(markets)
        for category in sorted(charged)
        if shipped.rate(market, category, "USD", day) is None
    ]
    assert missing == []


@pytest.mark.parametrize("day", [p.starts for p in POLICIES if p.starts < date(2026, 7, 1)])
def test_shipped_config_invents_no_rate_before_the_first_published_card(
    shipped: RateBook, day: date
) -> None:
    """No public source gives these periods: units stay unrated (issue 9), never guessed.
    (Replaces the check that invented example rows priced every era.)"""
    markets = {shipped.market(c, day) for c in _countries()} | {"Other"}
    categories = {c for p in POLICIES for c in p.categories} - {REFERRAL}
    assert all(shipped.rate(m, c, "USD", day) is None for m in markets for c in categories)


@pytest.mark.parametrize(
    ("user_id", "day", "market"),
    [
        pytest.param("14155550123", date(2026, 10, 1), "North America", id="US"),
        pytest.param("14165550123", date(2026, 10, 1), "North America", id="CA"),
        pytest.param("18095551234", date(2026, 10, 1), "Rest of Latin America", id="DO"),
        pytest.param("17875551234", date(2026, 10, 1), "Rest of Latin America", id="PR"),
        pytest.param("18765551234", date(2026, 10, 1), "Rest of Latin America", id="JM"),
        pytest.param("263771234567", date(2025, 9, 30), "Other", id="ZW-before-2025-10"),
        pytest.param("263771234567", date(2025, 10, 1), "Rest of Africa", id="ZW-from-2025-10"),
        pytest.param("85291234567", date(2026, 6, 30), "Rest of Asia Pacific", id="HK-before"),
        pytest.param("85291234567", date(2026, 7, 1), "Hong Kong", id="HK-from-2026-07"),
        pytest.param("48501234567", date(2026, 7, 1), "Poland", id="PL-from-2026-07"),
        pytest.param(
            "380501234567", date(2026, 9, 30), "Rest of Central & Eastern Europe", id="UA-before"
        ),
        pytest.param("380501234567", date(2026, 10, 1), "Ukraine", id="UA-from-2026-10"),
        pytest.param("77012345678", date(2026, 10, 1), "Kazakhstan", id="KZ-from-2026-10"),
        pytest.param("79161234567", date(2026, 10, 1), "Russia", id="RU"),
        pytest.param("447781123456", date(2026, 10, 1), "United Kingdom", id="GG-shares-+44"),
        pytest.param("6421234567", date(2026, 10, 1), "Rest of Asia Pacific", id="NZ"),
        pytest.param("2250123456789", date(2026, 10, 1), "Rest of Africa", id="CI"),
        pytest.param("59899123456", date(2026, 10, 1), "Rest of Latin America", id="UY"),
    ],
)
def test_shipped_markets_follow_metas_table(
    shipped: RateBook, user_id: str, day: date, market: str
) -> None:
    """The example market table is Meta's, with its dated moves."""
    country, _ = country_of(user_id)
    assert shipped.market(country, day) == market


def test_shipped_config_has_two_currencies_for_india(shipped: RateBook) -> None:
    """India is priced in USD and INR, each as published (no conversion)."""
    day = date(2026, 10, 1)
    assert shipped.rate("India", "marketing", "USD", day) == Decimal("0.0118")
    assert shipped.rate("India", "marketing", "INR", day) == Decimal("0.8631")


def test_shipped_tiers_are_metas_style(shipped: RateBook) -> None:
    """Brazil utility (Meta's 2026-10-01 USD tier file) has marginal tiers from 0, the last
    unbounded; the shipped tiers start 2026-10-01 (no public tier table before)."""
    tiers = shipped.tiers("Brazil", "utility", "USD", date(2026, 10, 1))
    assert tiers[0].label == "1:250000" and tiers[-1].to_volume is None
    assert "250001:2000000" in [t.label for t in tiers]


def test_every_shipped_tier_market_starts_at_its_list_rate(shipped: RateBook) -> None:
    """Every market with a shipped tier table (all 47 of Meta's 2026-10-01 USD tier file):
    the first band is the market's list rate for that category on that date, the bands are
    contiguous from 0 and the last is unbounded."""
    day = date(2026, 10, 1)
    problems: list[str] = []
    table = [row.cells for row in read_table(SHIPPED, TIERS, problems)]
    assert problems == []
    keys = {(r["market"], r["category"]) for r in table if r["effective_from"] == day.isoformat()}
    assert len({m for m, _ in keys}) == 47
    assert {c for _, c in keys} == {"utility", "authentication", AUTH_INTL}
    for market, category in sorted(keys):
        tiers = shipped.tiers(market, category, "USD", day)
        assert tiers[0].from_volume == 0 and tiers[-1].to_volume is None, (market, category)
        assert all(a.to_volume == b.from_volume for a, b in pairwise(tiers))
        assert tiers[0].rate == shipped.rate(market, category, "USD", day), (market, category)


# -- reading files ---------------------------------------------------------------------------


def test_comments_blank_lines_and_column_order_are_accepted(tmp_path: Path) -> None:
    """Columns in any order; '#' lines and blank lines skipped; optional files may be absent."""
    rates = "# a comment\n\nrate,category,currency,market,effective_from\n\n# x\n"
    rates += "0.0118,marketing,USD,India,2026-01-01\n"
    book = load_ratebook(write(tmp_path, {"rates.csv": rates}))
    assert book.rate("India", "marketing", "USD", date(2026, 1, 1)) == Decimal("0.0118")
    assert book.waba("w").currency == "USD"


def test_wabas_and_markup_are_read(tmp_path: Path) -> None:
    """wabas.csv sets currency, zone and portfolio (empty = own); markup.csv the markup."""
    files = {
        "wabas.csv": "waba_id,currency,timezone,portfolio_id\nw1,USD,Asia/Kolkata,\n"
        "w2,USD,UTC,p1\n",
        "markup.csv": "waba_id,percent,fixed_per_unit\nw1,12,0.0005\n",
    }
    book = load_ratebook(write(tmp_path, files))
    assert (book.waba("w1").portfolio_id, str(book.waba("w1").timezone)) == ("w1", "Asia/Kolkata")
    assert book.waba("w2").portfolio_id == "p1"
    assert book.billed(Decimal("0.0118"), "w1") == Decimal("0.013716")


def test_a_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Spreadsheet exports start with a BOM; it is not part of the first column's name."""
    (write(tmp_path, {}) / "rates.csv").write_text("\ufeff" + MINIMAL["rates.csv"])
    assert load_ratebook(tmp_path).rate("India", "utility", "USD", date(2026, 1, 1))


# -- refusing malformed files ----------------------------------------------------------------

MALFORMED = [
    pytest.param(
        {
            "rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility,0.0014\n"
            "2025-07-01,India,USD,foo,0.01\n"
        },
        "rates.csv:3:4: unknown category 'foo'",
        id="unknown-category",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility,1e3\n"},
        "rates.csv:2:5: rate '1e3' is not a plain decimal",
        id="exponent-decimal",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility,NaN\n"},
        "rates.csv:2:5: rate 'NaN' is not a plain decimal",
        id="nan-decimal",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility,-0.01\n"},
        "rates.csv:2:5: rate '-0.01' must not be negative",
        id="negative-rate",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-7-1,India,USD,utility,0.01\n"},
        "rates.csv:2:1: effective_from '2025-7-1' is not a date (YYYY-MM-DD)",
        id="bad-date",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-02-30,India,USD,utility,0.01\n"},
        "rates.csv:2:1: effective_from '2025-02-30' is not a date",
        id="impossible-date",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,India,usd,utility,0.01\n"},
        "rates.csv:2:3: currency 'usd' is not 3 upper-case letters",
        id="bad-currency",
    ),
    pytest.param(
        {
            "rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility,0.01\n"
            "# a comment does not hide the duplicate\n2025-07-01,India,USD,utility,0.02\n"
        },
        "rates.csv:4:1: overlapping dates: India/USD/utility has two rows effective 2025-07-01"
        " (first on line 2)",
        id="overlapping-rate-dates",
    ),
    pytest.param(
        {
            "markets.csv": "effective_from,country,market\n2022-01-01,IN,India\n"
            "2022-01-01,IN,Rest of Asia Pacific\n"
        },
        "markets.csv:3:1: overlapping dates: country IN has two rows effective 2022-01-01",
        id="overlapping-market-dates",
    ),
    pytest.param(
        {"markets.csv": "effective_from,country,market\n2022-01-01,XX,India\n"},
        "markets.csv:2:2: country 'XX' is not a 2-letter ISO 3166 code",
        id="unknown-country",
    ),
    pytest.param(
        {"wabas.csv": "waba_id,currency,timezone,portfolio_id\nw1,USD,Mars/Olympus,\n"},
        "wabas.csv:2:3: unknown time zone 'Mars/Olympus'",
        id="unknown-time-zone",
    ),
    pytest.param(
        {"wabas.csv": "waba_id,currency,timezone,portfolio_id\nw1,USD,UTC,\nw1,USD,UTC,p\n"},
        "wabas.csv:3:1: duplicate waba_id 'w1' (first on line 2)",
        id="duplicate-waba",
    ),
    pytest.param(
        {"wabas.csv": "waba_id,currency,timezone,portfolio_id\nw1,EUR,UTC,\n"},
        "wabas.csv:2:2: no rates in currency 'EUR' in rates.csv",
        id="waba-currency-without-rates",
    ),
    pytest.param(
        {"markup.csv": "waba_id,percent,fixed_per_unit\nw1,-5,0\n"},
        "markup.csv:2:2: percent '-5' must not be negative",
        id="negative-percent",
    ),
    pytest.param(
        {"markup.csv": "waba_id,percent,fixed_per_unit\nw1,5,0\nw1,6,0\n"},
        "markup.csv:3:1: duplicate waba_id 'w1'",
        id="duplicate-markup",
    ),
    pytest.param(
        {"rates.csv": "effective_from,market,currency,category\n"},
        "rates.csv: missing column 'rate'",
        id="missing-column",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER.strip() + ",note\n2025-07-01,India,USD,utility,0.01,x\n"},
        "rates.csv:1:6: unknown column 'note'",
        id="extra-column",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,India,USD,utility\n"},
        "rates.csv:2: expected 5 fields, found 4",
        id="short-row",
    ),
    pytest.param(
        {"rates.csv": RATES_HEADER + "2025-07-01,Indai,USD,utility,0.01\n"},
        "rates.csv:2:2: market 'Indai' is not in markets.csv",
        id="unknown-market",
    ),
    pytest.param(
        {"markets.csv": None},
        "markets.csv: required file is missing",
        id="missing-required-file",
    ),
]

TIER_RANGES = [
    pytest.param("100,,0.01\n", "tiers.csv:2:5: the first tier must start at 0", id="not-from-0"),
    pytest.param(
        "0,100,0.01\n2025-07-01,India,USD,utility,200,,0.009\n",
        "tiers.csv:3:5: gap in tiers: line 2 ends at 100",
        id="gap",
    ),
    pytest.param(
        "0,100,0.01\n2025-07-01,India,USD,utility,50,,0.009\n",
        "tiers.csv:3:5: overlapping tier ranges: line 2 runs to 100",
        id="overlap",
    ),
    pytest.param(
        "0,,0.01\n2025-07-01,India,USD,utility,100,,0.009\n",
        "tiers.csv:3:5: overlapping tier ranges: line 2 is unbounded",
        id="two-unbounded",
    ),
    pytest.param(
        "0,100,0.01\n", "tiers.csv:2:6: the last tier must be unbounded", id="last-bounded"
    ),
    pytest.param("0,0,0.01\n", "tiers.csv:2:6: to_volume 0 must exceed", id="from-not-below-to"),
    pytest.param("-1,,0.01\n", "tiers.csv:2:5: from_volume '-1' must not be negative", id="neg"),
    pytest.param("0,lots,0.01\n", "tiers.csv:2:6: to_volume 'lots' is not a whole", id="nan"),
]


def _with(files: dict[str, str | None], directory: Path) -> Path:
    write(directory, {k: v for k, v in files.items() if v is not None})
    for name in (k for k, v in files.items() if v is None):
        (directory / name).unlink()
    return directory


@pytest.mark.parametrize(("files", "expected"), MALFORMED)
def test_malformed_file_is_refused_naming_file_line_and_column(
    tmp_path: Path, files: dict[str, str | None], expected: str
) -> None:
    """Each problem names its place as file:line:column (or file: for the whole file)."""
    problems = problems_of(_with(files, tmp_path))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(("rows", "expected"), TIER_RANGES)
def test_bad_tier_ranges_are_refused(tmp_path: Path, rows: str, expected: str) -> None:
    """Tiers of one key and date start at 0, are contiguous, and end unbounded."""
    tiers = TIERS_HEADER + "2025-07-01,India,USD,utility," + rows
    problems = problems_of(write(tmp_path, {"tiers.csv": tiers}))
    assert any(p.startswith(expected) for p in problems), problems


def test_tiers_of_different_dates_are_separate_tables(tmp_path: Path) -> None:
    """Each effective date has its own complete tier table."""
    rows = "".join(
        f"{day},India,USD,utility,{lo},{hi},0.001\n"
        for day in ("2025-07-01", "2026-01-01")
        for lo, hi in ((0, 10), (10, ""))
    )
    book = load_ratebook(write(tmp_path, {"tiers.csv": TIERS_HEADER + rows}))
    assert len(book.tiers("India", "utility", "USD", date(2026, 1, 1))) == 2


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """One start-up failure lists all the problems of all the files."""
    files = {
        "rates.csv": RATES_HEADER + "2025-07-01,India,USD,foo,0.01\n"
        "2025-07-01,India,USD,utility,abc\n",
        "wabas.csv": "waba_id,currency,timezone,portfolio_id\nw1,USD,Nowhere/City,\n",
        "tiers.csv": TIERS_HEADER + "2025-07-01,India,USD,utility,5,,0.01\n",
        "markup.csv": "waba_id,percent\nw1,5\n",
    }
    with pytest.raises(SettingsError) as caught:
        load_ratebook(write(tmp_path, files))
    expected = [
        "rates.csv:2:4: unknown category 'foo'",
        "rates.csv:3:5: rate 'abc' is not a plain decimal",
        "tiers.csv:2:5: the first tier must start at 0",
        "wabas.csv:2:3: unknown time zone 'Nowhere/City'",
        "markup.csv: missing column 'fixed_per_unit'",
    ]
    problems = caught.value.problems
    assert all(any(p.startswith(e) for p in problems) for e in expected), problems
    assert len(problems) == len(expected)
    assert all(e in str(caught.value) for e in expected)

"""Rating: user -> country -> market, and (market, category, currency, local date) -> price."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from processor.core.model import Unit
from processor.core.policies import MESSAGE, VOLUME_TIER
from processor.core.rating import (
    MarketRow,
    Markup,
    RateBook,
    RateRow,
    Tier,
    TierRow,
    WabaSettings,
    country_of,
)

D = Decimal
BASE = date(2022, 1, 1)
KOLKATA = ZoneInfo("Asia/Kolkata")

MARKETS = [
    MarketRow(BASE, "US", "North America"),
    MarketRow(BASE, "CA", "North America"),
    MarketRow(BASE, "DO", "Rest of Latin America"),
    MarketRow(BASE, "PR", "Rest of Latin America"),
    MarketRow(BASE, "JM", "Rest of Latin America"),
    MarketRow(BASE, "RU", "Russia"),
    MarketRow(BASE, "IN", "India"),
    MarketRow(BASE, "BR", "Brazil"),
    MarketRow(BASE, "HK", "Rest of Asia Pacific"),
    MarketRow(date(2026, 7, 1), "HK", "Hong Kong"),
    MarketRow(date(2026, 10, 1), "KZ", "Kazakhstan"),
]
RATES = [
    RateRow(date(2025, 7, 1), "India", "USD", "utility", D("0.0014")),
    RateRow(date(2026, 10, 1), "India", "USD", "utility", D("0.0020")),
    RateRow(date(2025, 7, 1), "India", "INR", "utility", D("0.1150")),
    RateRow(date(2025, 7, 1), "India", "USD", "marketing", D("0.0107")),
    RateRow(date(2026, 1, 1), "India", "USD", "marketing", D("0.0118")),
    RateRow(date(2025, 7, 1), "India", "USD", "service", D("0")),
    RateRow(date(2025, 7, 1), "Brazil", "USD", "marketing", D("0.0625")),
    RateRow(date(2026, 7, 1), "Brazil", "USD", "marketing_lite", D("0.0600")),
    RateRow(date(2025, 7, 1), "Rest of Asia Pacific", "USD", "utility", D("0.0113")),
    RateRow(date(2026, 7, 1), "Hong Kong", "USD", "utility", D("0.0130")),
]
TIERS = [
    TierRow(date(2025, 7, 1), "India", "USD", "utility", 0, 100_000, D("0.0014")),
    TierRow(date(2025, 7, 1), "India", "USD", "utility", 25_000_000, None, D("0.0010")),
    TierRow(date(2025, 7, 1), "India", "USD", "utility", 100_000, 25_000_000, D("0.0012")),
]
WABAS = [
    WabaSettings("waba-in", "USD", KOLKATA, "portfolio-1"),
    WabaSettings("waba-inr", "INR", KOLKATA, "portfolio-1"),
    WabaSettings("waba-hk", "USD", ZoneInfo("Asia/Hong_Kong"), "waba-hk"),
    WabaSettings("waba-eur", "EUR", ZoneInfo("Europe/Paris"), "waba-eur"),
]
MARKUPS = [Markup("waba-marked", D("12"), D("0.0005")), Markup("waba-in", D("10"), D("0"))]

US, CA, DO, PR, JM = "14155550123", "14165550123", "18095551234", "17875551234", "18765551234"
INDIA, HONG_KONG = "919876543210", "85291234567"


@pytest.fixture
def book() -> RateBook:
    return RateBook(markets=MARKETS, rates=RATES, tiers=TIERS, wabas=WABAS, markups=MARKUPS)


def unit(category: str, at: str) -> Unit:
    """A delivered message of ``category`` charged at the UTC instant ``at`` (ISO)."""
    moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return Unit(
        record_id="r1",
        kind=MESSAGE,
        policy="pmp-2026-10",
        pricing_model="PMP",
        category=category,
        charge_time=int(moment.timestamp()),
        expires_at=None,
        wamid="wamid.1",
        meta_conversation_id=None,
        free_reason=None,
        bucket=VOLUME_TIER,
        source="meta",
        discrepancy=None,
    )


# -- who is the user -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "country", "source"),
    [
        pytest.param(US, "US", "phone", id="+1-415-US"),
        pytest.param(CA, "CA", "phone", id="+1-416-CA"),
        pytest.param(DO, "DO", "phone", id="+1-809-DO"),
        pytest.param(PR, "PR", "phone", id="+1-787-PR"),
        pytest.param(JM, "JM", "phone", id="+1-876-JM"),
        pytest.param("79161234567", "RU", "phone", id="+7-916-RU"),
        pytest.param("77012345678", "KZ", "phone", id="+7-701-KZ"),
        pytest.param("5511988887777", "BR", "phone", id="+55-BR"),
        pytest.param("+5511988887777", "BR", "phone", id="plus-sign-tolerated"),
        pytest.param("19995550123", "US", "phone", id="+1-unknown-area-code-falls-back-to-US"),
        pytest.param("US.13491208655302741918", "US", "bsuid", id="bsuid"),
        pytest.param("BR.ENT.abc123", "BR", "bsuid", id="parent-bsuid"),
        pytest.param("80012345678", None, "unknown", id="non-geographic-+800"),
        pytest.param("12345", None, "unknown", id="too-short-for-a-phone"),
        pytest.param("someone@example.com", None, "unknown", id="garbage"),
        pytest.param("", None, "unknown", id="empty"),
    ],
)
def test_country_of_user_id(user_id: str, country: str | None, source: str) -> None:
    """Phone digits give the country by calling and area code; a BSUID by its prefix."""
    assert country_of(user_id) == (country, source)


@pytest.mark.parametrize(
    ("user_id", "market"),
    [
        pytest.param(US, "North America", id="US"),
        pytest.param(CA, "North America", id="CA"),
        pytest.param(DO, "Rest of Latin America", id="DO"),
        pytest.param(PR, "Rest of Latin America", id="PR"),
        pytest.param(JM, "Rest of Latin America", id="JM"),
        pytest.param("79161234567", "Russia", id="RU"),
        # issue 9: a territory the table does not list falls to its calling code's main
        # country (+7 -> RU) before Other; the shipped markets.csv lists KZ as Other until
        # 2026-10-01, so it keeps that row there.
        pytest.param("77012345678", "Russia", id="KZ-unlisted-before-2026-10-follows-plus-7"),
        pytest.param("BR.13491208655302741918", "Brazil", id="BSUID-BR"),
        pytest.param("nobody", "Other", id="unknown-user"),
    ],
)
def test_plus_one_and_plus_seven_numbers_land_in_different_markets(
    book: RateBook, user_id: str, market: str
) -> None:
    """The market follows the country, not the shared calling code."""
    country, _ = book.country_of(user_id)
    assert book.market(country, date(2026, 9, 30)) == market


@pytest.mark.parametrize(
    ("day", "market"),
    [
        pytest.param(date(2021, 12, 31), "Other", id="before-first-row"),
        pytest.param(date(2026, 6, 30), "Rest of Asia Pacific", id="2026-06-30"),
        pytest.param(date(2026, 7, 1), "Hong Kong", id="2026-07-01"),
        pytest.param(date(2027, 1, 1), "Hong Kong", id="until-next-row"),
    ],
)
def test_hong_kong_leaves_rest_of_asia_pacific_on_2026_07_01(
    book: RateBook, day: date, market: str
) -> None:
    """A market row applies from its date until the next row for the same country."""
    assert book.market("HK", day) == market


def test_market_move_follows_the_wabas_local_date(book: RateBook) -> None:
    """16:30Z on June 30 is already July 1 in Hong Kong: the new market and its rate apply."""
    rating = book.rate_unit(unit("utility", "2026-06-30T16:30:00"), "waba-hk", HONG_KONG)
    assert (rating.market, rating.rate) == ("Hong Kong", D("0.0130"))
    in_utc = book.rate_unit(unit("utility", "2026-06-30T16:30:00"), "waba-utc", HONG_KONG)
    assert (in_utc.market, in_utc.rate) == ("Rest of Asia Pacific", D("0.0113"))


def test_country_without_a_row_or_unknown_is_other(book: RateBook) -> None:
    """Unlisted countries, and users whose country is unknown, are billed in Other."""
    assert book.market("ZW", date(2026, 10, 1)) == "Other"
    assert book.market(None, date(2026, 10, 1)) == "Other"


# -- prices ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waba", "rate"),
    [
        pytest.param("waba-in", D("0.0020"), id="Asia/Kolkata-already-Oct-1"),
        pytest.param("waba-utc", D("0.0014"), id="UTC-still-Sep-30"),
    ],
)
def test_rate_change_on_the_first_follows_the_wabas_midnight(
    book: RateBook, waba: str, rate: Decimal
) -> None:
    """23:30Z on Sept 30 is Oct 1 in Kolkata: that WABA pays the rate effective Oct 1."""
    rating = book.rate_unit(unit("utility", "2026-09-30T23:30:00"), waba, INDIA)
    assert rating.rate == rate


def test_marketing_lite_falls_back_to_marketing(book: RateBook) -> None:
    """Without a marketing_lite row, a marketing_lite message costs the marketing rate."""
    assert book.rate("India", "marketing_lite", "USD", date(2026, 3, 1)) == D("0.0118")


def test_marketing_lite_row_wins_from_its_date(book: RateBook) -> None:
    """Once a marketing_lite row is in force it is used; before it, marketing is."""
    assert book.rate("Brazil", "marketing_lite", "USD", date(2026, 6, 30)) == D("0.0625")
    assert book.rate("Brazil", "marketing_lite", "USD", date(2026, 7, 1)) == D("0.0600")


@pytest.mark.parametrize(
    ("market", "category", "currency", "day", "rate"),
    [
        pytest.param("India", "utility", "USD", date(2025, 6, 30), None, id="before-first-row"),
        pytest.param("India", "utility", "USD", date(2025, 7, 1), D("0.0014"), id="from-its-date"),
        pytest.param("India", "utility", "USD", date(2026, 9, 30), D("0.0014"), id="until-next"),
        pytest.param("India", "authentication", "USD", date(2026, 1, 1), None, id="no-row"),
        pytest.param("India", "referral_conversion", "USD", date(2026, 1, 1), D(0), id="fep-free"),
        pytest.param("Other", "utility", "USD", date(2026, 1, 1), None, id="unknown-market"),
    ],
)
def test_rate_lookup(
    book: RateBook, market: str, category: str, currency: str, day: date, rate: Decimal | None
) -> None:
    """A rate applies from its date until the next row for the same key; None when absent."""
    assert book.rate(market, category, currency, day) == rate


@pytest.mark.parametrize(
    ("waba", "currency", "rate"),
    [
        pytest.param("waba-inr", "INR", D("0.1150"), id="INR-WABA"),
        pytest.param("waba-utc", "USD", D("0.0014"), id="unconfigured-WABA-is-USD"),
        pytest.param("waba-eur", "EUR", None, id="no-EUR-card"),
    ],
)
def test_rate_is_taken_in_the_wabas_currency(
    book: RateBook, waba: str, currency: str, rate: Decimal | None
) -> None:
    """Each currency has its own rate card; no conversion between them."""
    rating = book.rate_unit(unit("utility", "2026-03-01T12:00:00"), waba, INDIA)
    assert (rating.currency, rating.rate) == (currency, rate)


def test_unconfigured_waba_gets_defaults(book: RateBook) -> None:
    """Unknown WABAs: USD, UTC, their own portfolio."""
    assert book.waba("123") == WabaSettings("123", "USD", ZoneInfo("UTC"), "123")


# -- markup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("waba", "amount", "billed"),
    [
        pytest.param("waba-marked", D("0.0118"), D("0.0137160"), id="12%+0.0005"),
        pytest.param("waba-marked", D("1"), D("1.1205"), id="one-unit"),
        pytest.param("waba-in", D("0.0014"), D("0.00154"), id="percent-only"),
        pytest.param("waba-plain", D("0.0118"), D("0.0118"), id="no-markup-row"),
    ],
)
def test_markup_is_percent_plus_fixed_exactly(
    book: RateBook, waba: str, amount: Decimal, billed: Decimal
) -> None:
    """billed = amount * (1 + percent/100) + fixed_per_unit, in exact decimals."""
    result = book.billed(amount, waba)
    assert result == billed
    assert isinstance(result, Decimal)


def test_rating_carries_list_and_billed_rate(book: RateBook) -> None:
    """rate is Meta's list price; billed_rate adds the WABA's markup."""
    rating = book.rate_unit(unit("marketing", "2026-03-01T12:00:00"), "waba-marked", INDIA)
    assert (rating.rate, rating.billed_rate) == (D("0.0118"), D("0.013716"))
    assert (rating.country, rating.country_source, rating.market) == ("IN", "phone", "India")


def test_zero_or_missing_rate_is_not_marked_up(book: RateBook) -> None:
    """A zero list price stays zero with markup; a missing one stays missing."""
    free = book.rate_unit(unit("service", "2026-03-01T12:00:00"), "waba-marked", INDIA)
    assert (free.rate, free.billed_rate) == (D(0), D(0))
    unpriced = book.rate_unit(unit("authentication", "2026-03-01T12:00:00"), "waba-marked", INDIA)
    assert (unpriced.rate, unpriced.billed_rate) == (None, None)


# -- tiers -----------------------------------------------------------------------------------


def test_tiers_are_sorted_and_labelled_like_meta(book: RateBook) -> None:
    """Tiers come in volume order with Meta's 'from+1:to' labels, the last open-ended."""
    tiers = book.tiers("India", "utility", "USD", date(2026, 3, 1))
    assert [t.label for t in tiers] == ["1:100000", "100001:25000000", "25000001:"]
    assert [t.rate for t in tiers] == [D("0.0014"), D("0.0012"), D("0.0010")]


def test_tiers_billed_rate_carries_the_markup(book: RateBook) -> None:
    """rate_unit gives the tiers with each tier's rate marked up for the WABA."""
    rating = book.rate_unit(unit("utility", "2026-03-01T12:00:00"), "waba-in", INDIA)
    assert [t.billed_rate for t in rating.tiers] == [D("0.00154"), D("0.00132"), D("0.00110")]


@pytest.mark.parametrize(
    ("category", "day", "expected"),
    [
        pytest.param("marketing", date(2026, 3, 1), 0, id="marketing-untiered"),
        pytest.param("utility", date(2025, 6, 30), 0, id="before-tiers"),
        pytest.param("utility", date(2025, 7, 1), 3, id="from-tiers-date"),
    ],
)
def test_tiers_exist_only_where_defined(
    book: RateBook, category: str, day: date, expected: int
) -> None:
    """Tiers are non-empty only for the (market, category, currency, date) that has them."""
    assert len(book.tiers("India", category, "USD", day)) == expected


@pytest.mark.parametrize(
    ("k", "label"),
    [
        pytest.param(1, "1:100000", id="first"),
        pytest.param(100_000, "1:100000", id="upper-bound-inclusive"),
        pytest.param(100_001, "100001:25000000", id="next-tier"),
        pytest.param(25_000_001, "25000001:", id="unbounded"),
        pytest.param(10**12, "25000001:", id="huge"),
    ],
)
def test_tier_for_kth_charged_message(book: RateBook, k: int, label: str) -> None:
    """The k-th charged message is in the tier with from_volume < k <= to_volume."""
    rating = book.rate_unit(unit("utility", "2026-03-01T12:00:00"), "waba-utc", INDIA)
    tier = rating.tier_for(k)
    assert tier is not None and tier.label == label


@given(st.integers(min_value=1, max_value=10**10))
@example(1).via("the first message")
@example(100).via("exactly at the first bound")
@example(101).via("just past the first bound")
@example(5000).via("exactly at the second bound")
@example(5001).via("just past the second bound")
def test_exactly_one_tier_holds_every_message(k: int) -> None:
    """Contiguous tiers from 0 ending unbounded hold each charged message exactly once (the
    bounds are explicit examples: random k from 1..10^10 almost never hits them)."""
    tiers = [Tier(0, 100, D(1), D(1)), Tier(100, 5000, D(1), D(1)), Tier(5000, None, D(1), D(1))]
    assert sum(t.holds(k) for t in tiers) == 1

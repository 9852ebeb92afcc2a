"""Market by calling code: a territory the market table does not list is billed in the market
of its calling code's main country (issue 9 item 1), before ``Other``."""

from __future__ import annotations

from datetime import date

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from processor.core.rating import (
    OTHER,
    MarketRow,
    RateBook,
    _parsed_country,
    _phone_country,
    country_of,
    main_country,
)

DAY = date(2026, 7, 15)
BASE = date(2022, 1, 1)
SHARED = {
    code: regions
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
    if len(regions) > 1 and "001" not in regions
}


def sovereign_only_book() -> RateBook:
    """A table built from Meta's country list: only each shared code's main country."""
    rows = [MarketRow(BASE, regions[0], f"market-of-{regions[0]}") for regions in SHARED.values()]
    return RateBook(markets=rows)


def example_number(region: str) -> str | None:
    number = phonenumbers.example_number_for_type(
        region, phonenumbers.PhoneNumberType.MOBILE
    ) or phonenumbers.example_number(region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def test_the_shared_calling_codes_include_the_ones_the_issue_names() -> None:
    assert {1, 7, 44, 47, 61, 262, 290, 358, 590, 599} <= SHARED.keys()


@pytest.mark.parametrize("region", [r for regions in SHARED.values() for r in regions[1:]], ids=str)
def test_an_unlisted_territory_is_billed_in_its_calling_codes_main_market(region: str) -> None:
    """Every territory of every shared calling code, by BSUID prefix and by phone number."""
    book = sovereign_only_book()
    code = phonenumbers.country_code_for_region(region)
    main = SHARED[code][0]
    assert main_country(region) == main
    assert book.market(region, DAY) == f"market-of-{main}"
    number = example_number(region)
    if number is not None:
        country, _ = country_of(number)
        assert book.market(country, DAY) == f"market-of-{main}"


@pytest.mark.parametrize(
    ("user", "country"),
    [
        pytest.param("447781123456", "GG", id="Guernsey-+44-7781"),
        pytest.param("447700312345", "JE", id="Jersey-+44-7700"),
        pytest.param("447524123456", "IM", id="Isle-of-Man-+44-7524"),
    ],
)
def test_crown_dependencies_are_billed_as_united_kingdom_and_keep_their_country(
    user: str, country: str
) -> None:
    book = RateBook(markets=[MarketRow(BASE, "GB", "United Kingdom")])
    got, source = country_of(user)
    assert (got, source) == (country, "phone")
    assert book.market(got, DAY) == "United Kingdom"


def test_a_listed_territory_keeps_its_own_row() -> None:
    book = RateBook(
        markets=[
            MarketRow(BASE, "GB", "United Kingdom"),
            MarketRow(BASE, "GG", "Rest of Western Europe"),
            MarketRow(BASE, "RU", "Russia"),
            MarketRow(BASE, "KZ", OTHER),
            MarketRow(date(2026, 10, 1), "KZ", "Kazakhstan"),
        ]
    )
    assert book.market("GG", DAY) == "Rest of Western Europe"
    assert book.market("JE", DAY) == "United Kingdom"
    assert book.market("KZ", DAY) == OTHER
    assert book.market("KZ", date(2026, 10, 1)) == "Kazakhstan"


def test_a_territory_falls_to_the_main_country_only_where_the_main_country_is_listed() -> None:
    book = RateBook(markets=[MarketRow(date(2026, 1, 1), "GB", "United Kingdom")])
    assert book.market("GG", date(2025, 12, 31)) == OTHER
    assert book.market("GG", date(2026, 1, 1)) == "United Kingdom"
    assert book.market("ZW", DAY) == OTHER  # +263 is shared with nobody
    assert book.market(None, DAY) == OTHER


@pytest.mark.parametrize(
    ("user", "market"),
    [
        pytest.param("12025550123", "North America", id="US"),
        pytest.param("14165550123", "North America", id="CA"),
        pytest.param("18095551234", "Rest of Latin America", id="DO"),
        pytest.param("12423571234", "Rest of Latin America", id="BS"),
        pytest.param("17875551234", "Rest of Latin America", id="PR-listed"),
        pytest.param("13405551234", "North America", id="VI-unlisted-falls-to-US"),
    ],
)
def test_the_plus_one_split_keeps_working(user: str, market: str) -> None:
    book = RateBook(
        markets=[
            MarketRow(BASE, "US", "North America"),
            MarketRow(BASE, "CA", "North America"),
            MarketRow(BASE, "DO", "Rest of Latin America"),
            MarketRow(BASE, "BS", "Rest of Latin America"),
            MarketRow(BASE, "PR", "Rest of Latin America"),
        ]
    )
    country, _ = country_of(user)
    assert book.market(country, DAY) == market


CALLING_CODES = sorted(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=2_000, deadline=None)
@given(
    code=st.sampled_from(CALLING_CODES),
    rest=st.text(alphabet="0123456789", min_size=1, max_size=14),
)
def test_the_calling_code_shortcut_gives_the_full_parse_country(code: str, rest: str) -> None:
    """A number under a calling code of one region skips phonenumbers' parse (the drain's
    costliest step for a new user): it must name the country the parse names, for every
    code and length the user-id pattern admits (and shared codes still take the parse)."""
    digits = (code + rest)[:15]
    if len(digits) < 7:
        return
    assert _phone_country.__wrapped__(digits) == _parsed_country(digits)

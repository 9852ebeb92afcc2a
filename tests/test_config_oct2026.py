"""wabas.csv's optional columns of late 2026 (rule book 9.2.6, 10): service_exempt_until and
max_price_enabled; and general_purpose_ai rates in rates.csv, checked like every rate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from processor.config_files import load_ratebook
from processor.errors import SettingsError

MINIMAL = {
    "markets.csv": "effective_from,country,market\n2022-01-01,IT,Italy\n",
    "rates.csv": "effective_from,market,currency,category,rate\n"
    "2025-07-01,Italy,USD,utility,0.0300\n",
}
HEADER = "waba_id,currency,timezone,portfolio_id,service_exempt_until,max_price_enabled\n"


def write(directory: Path, **files: str) -> Path:
    for name, text in {**MINIMAL, **{f"{k}.csv": v for k, v in files.items()}}.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_ratebook(directory)
    return caught.value.problems


def test_the_new_columns_are_read(tmp_path: Path) -> None:
    """service_exempt_until is a date (inclusive); max_price_enabled true/false, empty false."""
    wabas = HEADER + "w1,USD,UTC,,2027-12-31,TRUE\nw2,USD,UTC,,,\n"
    book = load_ratebook(write(tmp_path, wabas=wabas))
    w1, w2 = book.waba("w1"), book.waba("w2")
    assert (w1.service_exempt_until, w1.max_price_enabled) == (date(2027, 12, 31), True)
    assert (w2.service_exempt_until, w2.max_price_enabled) == (None, False)
    assert w1.service_exempt_on(date(2027, 12, 31)) and not w1.service_exempt_on(date(2028, 1, 1))
    assert not w2.service_exempt_on(date(2026, 11, 1))


def test_the_columns_are_optional(tmp_path: Path) -> None:
    """A wabas.csv without them (or an unlisted WABA) is neither exempt nor max-price."""
    wabas = "waba_id,currency,timezone,portfolio_id\nw1,USD,UTC,\n"
    book = load_ratebook(write(tmp_path, wabas=wabas))
    for waba in ("w1", "unlisted"):
        settings = book.waba(waba)
        assert (settings.service_exempt_until, settings.max_price_enabled) == (None, False)


BAD = [
    pytest.param(
        HEADER + "w1,USD,UTC,,31/12/2027,\n",
        "wabas.csv:2:5: service_exempt_until '31/12/2027' is not a date (YYYY-MM-DD)",
        id="exempt-not-a-date",
    ),
    pytest.param(
        HEADER + "w1,USD,UTC,,,yes\n",
        "wabas.csv:2:6: max_price_enabled 'yes' is not true or false",
        id="max-price-not-a-flag",
    ),
    pytest.param(
        HEADER.rstrip("\n") + ",effective_from\n"
        "w1,USD,UTC,,2027-12-31,,\nw1,INR,UTC,,,,2027-01-01\n",
        "wabas.csv:3:5: service_exempt_until differs from line 2 (only currency is dated)",
        id="exempt-differs-between-rows",
    ),
    pytest.param(
        HEADER.rstrip("\n")
        + ",effective_from\nw1,USD,UTC,,,true,\nw1,INR,UTC,,,false,2027-01-01\n",
        "wabas.csv:3:6: max_price_enabled differs from line 2 (only currency is dated)",
        id="max-price-differs-between-rows",
    ),
    pytest.param(
        "waba_id,currency,timezone,portfolio_id,exempt_until\nw1,USD,UTC,,2027-12-31\n",
        "wabas.csv:1:5: unknown column 'exempt_until'",
        id="misspelt-column",
    ),
]


@pytest.mark.parametrize(("wabas", "expected"), BAD)
def test_bad_cells_are_refused_naming_their_place(
    tmp_path: Path, wabas: str, expected: str
) -> None:
    rates = MINIMAL["rates.csv"] + "2025-07-01,Italy,INR,utility,2.5\n"
    problems = problems_of(write(tmp_path, wabas=wabas, rates=rates))
    assert any(p.startswith(expected) for p in problems), problems


def test_general_purpose_ai_rates_are_configured_in_rates_csv(tmp_path: Path) -> None:
    """A per-market general_purpose_ai rate is a rates.csv row of that category, dated."""
    rates = MINIMAL["rates.csv"] + "2026-02-16,Italy,EUR,general_purpose_ai,0.0572\n"
    wabas = "waba_id,currency,timezone,portfolio_id\nw1,EUR,Europe/Rome,\n"
    book = load_ratebook(write(tmp_path, rates=rates, wabas=wabas))
    assert book.rate("Italy", "general_purpose_ai", "EUR", date(2026, 3, 1)) == Decimal("0.0572")
    assert book.rate("Italy", "general_purpose_ai", "EUR", date(2026, 2, 15)) is None


def test_general_purpose_ai_rates_are_checked_like_every_rate(tmp_path: Path) -> None:
    """Market, currency and decimal are checked; a misspelt category is refused."""
    rates = MINIMAL["rates.csv"] + (
        "2026-02-16,Italia,EUR,general_purpose_ai,0.05\n"
        "2026-02-16,Italy,EUR,general-purpose-ai,0.05\n"
        "2026-02-16,Italy,EUR,general_purpose_ai,0,05\n"
    )
    problems = problems_of(write(tmp_path, rates=rates))
    expected = [
        "rates.csv:3:2: market 'Italia' is not in markets.csv",
        "rates.csv:4:4: unknown category 'general-purpose-ai'",
        "rates.csv:5: expected 5 fields, found 6",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)

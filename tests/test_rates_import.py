"""``wa-billing rates import``: Meta's files as downloaded (CSV and XLSX) into dated config rows.

The fixtures in tests/data/meta-files are copies of Meta's files (two byte-exact), checked by
their SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.config_files import load_ratebook
from processor.meta_files import META_CURRENCIES, MetaFileError, read
from processor.rates_import import RatesImportError, run

FILES = Path(__file__).parent / "data" / "meta-files"
ROOT = Path(__file__).resolve().parent.parent
USD = FILES / "usd-rates-2026-07-01.csv"
COP = FILES / "cop-rates-2026-07-01.csv"
CBP = FILES / "usd-rates-cbp-2024-partial.csv"
TIERS = FILES / "usd-volume-tiers-2026-10-01-partial.csv"
MAPPING = FILES / "mapping-guessed-layout.csv"
RATES_HEADER_WITH_SOURCE = "effective_from,market,currency,category,rate,source\n"
MARKETS = (
    "effective_from,country,market\n"
    + "".join(
        f"2022-01-01,{c},{m}\n"
        for c, m in [
            ("AR", "Argentina"),
            ("BR", "Brazil"),
            ("CO", "Colombia"),
            ("MX", "Mexico"),
            ("IN", "India"),
            ("ID", "Indonesia"),
            ("MY", "Malaysia"),
            ("HU", "Rest of Central & Eastern Europe"),
        ]
    )
    + "2026-10-01,BD,Bangladesh\n2026-10-01,MA,Morocco\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "markets.csv").write_text(MARKETS)
    (directory / "rates.csv").write_text("effective_from,market,currency,category,rate\n")
    return directory


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped config directory (every market name Meta uses)."""
    return Path(shutil.copytree(ROOT / "config", tmp_path / "shipped"))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_fixtures_are_meta_files_byte_for_byte() -> None:
    for line in (FILES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((FILES / name).read_bytes()).hexdigest() == digest, name
    raw = USD.read_bytes()
    assert raw.count(b"\r\n") == 43 and not raw.endswith(b"\n")  # CRLF, no final newline
    assert b'"Authentication-\nInternational"' in raw  # bare LF inside the quoted header


class TestRatesFile:
    def test_the_july_2026_usd_card_gives_one_row_per_priced_cell(self) -> None:
        meta = read(USD.name, USD.read_bytes())
        assert (meta.kind, meta.title_date) == ("rates", date(2026, 7, 1))
        assert len({c.market for c in meta.rates}) == 38
        assert len(meta.rates) == 38 * 3 + 9  # n/a (Auth-Intl mostly, Service) gives no row
        got = {(c.market, c.category): c.rate for c in meta.rates}
        assert got[("India", "marketing")] == Decimal("0.0118")
        assert got[("Brazil", "utility")] == Decimal("0.0068")
        assert got[("India", "authentication_international")] == Decimal("0.0304")
        assert ("India", "service") not in got and (
            "Brazil",
            "authentication_international",
        ) not in got
        assert {c.currency for c in meta.rates} == {"USD"}

    def test_a_header_row_is_found_by_its_text_and_names_the_physical_line(self) -> None:
        meta = read(USD.name, USD.read_bytes())
        assert meta.rates[0].line == 8  # the header spans lines 6-7

    def test_cbp_file_with_currency_symbols_and_priced_service(self) -> None:
        meta = read(CBP.name, CBP.read_bytes())
        assert meta.title_date == date(2023, 6, 1)  # the title lags its 2024 content
        got = {(c.market, c.category): (c.currency, c.rate) for c in meta.rates}
        assert got[("Indonesia", "service")] == ("USD", Decimal("0.0190"))
        assert got[("Other", "authentication")] == ("USD", Decimal("0.0304"))

    @pytest.mark.parametrize("token", ["$US", "A$", "£", "₹", "RP", "GBD", "COP", "brl"])
    def test_currency_tokens_are_normalised(self, token: str) -> None:
        text = USD.read_bytes().replace(b"Argentina,USD,", f"Argentina,{token},".encode())
        meta = read("x.csv", text)
        assert meta.rates[0].currency in META_CURRENCIES

    def test_an_unreadable_cell_fails_with_file_and_line(self) -> None:
        text = USD.read_bytes().replace(b"India,USD,0.0118", b"India,USD,0.01l8")
        with pytest.raises(MetaFileError, match=r"^bad\.csv:17: rate '0\.01l8' is not a number"):
            read("bad.csv", text)

    def test_an_unknown_column_is_refused_rather_than_shifted(self) -> None:
        text = USD.read_bytes().replace(b",Service", b",Voice")
        with pytest.raises(MetaFileError, match=r"^x\.csv:6: unknown column 'Voice'"):
            read("x.csv", text)

    def test_a_file_that_is_not_a_meta_file(self) -> None:
        with pytest.raises(MetaFileError, match=r"^x\.csv:1: not a Meta"):
            read("x.csv", b"a,b,c\r\n1,2,3")


class TestTierFile:
    def test_inclusive_from_becomes_exclusive_from_volume_and_dashes_no_bound(self) -> None:
        meta = read(TIERS.name, TIERS.read_bytes())
        assert (meta.kind, meta.title_date) == ("tiers", date(2026, 10, 1))
        brazil = [(t.from_volume, t.to_volume, t.rate) for t in meta.tiers
                  if t.market == "Brazil" and t.category == "utility"]  # fmt: skip
        assert brazil == [
            (0, 250_000, Decimal("0.0068")), (250_000, 2_000_000, Decimal("0.0065")),
            (2_000_000, 17_000_000, Decimal("0.0061")), (17_000_000, 35_000_000, Decimal("0.0058")),
            (35_000_000, 70_000_000, Decimal("0.0054")), (70_000_000, None, Decimal("0.0051")),
        ]  # fmt: skip

    def test_market_names_are_forward_filled_and_na_groups_give_no_rows(self) -> None:
        meta = read(TIERS.name, TIERS.read_bytes())
        markets = {t.market for t in meta.tiers}
        assert markets == {"Argentina", "Bangladesh", "Brazil", "Colombia", "Mexico", "Morocco",
                           "Other"}  # fmt: skip
        intl = {t.market for t in meta.tiers if t.category == "authentication_international"}
        assert intl == {"Bangladesh", "Morocco"}
        assert len(meta.tiers) == 7 * 6 * 2 + 2 * 6

    def test_tier_rates_are_read_never_computed_from_the_percentage(self) -> None:
        meta = read(TIERS.name, TIERS.read_bytes())
        colombia = [t.rate for t in meta.tiers
                    if t.market == "Colombia" and t.category == "utility"]  # fmt: skip
        assert colombia[:2] == [Decimal("0.0008"), Decimal("0.0008")]  # -5% of 0.0008 rounded

    def test_a_gap_between_bands_fails_with_its_line(self) -> None:
        text = TIERS.read_bytes().replace(b'"250,001","2,000,000"', b'"250,002","2,000,000"')
        with pytest.raises(MetaFileError, match=r"^t\.csv:20: Brazil utility: From must follow"):
            read("t.csv", text)


def xlsx_card(rows: list[list[object]], sheet: str = "List rates") -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


OCT_TITLE = "Cost per message in USD on the WhatsApp Business Platform, effective October 1, 2026"
OCT_XLSX = xlsx_card([
    [OCT_TITLE],
    ["This is not our current rate card. This reflects future updates to rates."],
    ["Effective October 1, 2026 - Rates below will apply. Learn more here: "],
    ["Market", "Currency", "Marketing", "Utility", "Authentication",
     "Authentication-\nInternational", "Service", "Meta Business Agent"],
    ["Colombia", "USD", 0.0125, 8.0e-4, 8.0e-4, "n/a", 8.0e-4, "$2.00 USD / 1 M (million) tokens"],
    ["India", "USD", 0.0118, 0.0014, 0.0014, 0.0304, 0.0014, "$2.00 USD / 1 M (million) tokens"],
    [None, None], ["", ""],
])  # fmt: skip


class TestXlsx:
    def test_an_xlsx_served_behind_a_csv_link_is_read_by_content(self) -> None:
        meta = read("USD_rates.csv", OCT_XLSX)
        assert meta.title_date == date(2026, 10, 1)
        got = {(c.market, c.category): c.rate for c in meta.rates}
        assert got[("Colombia", "utility")] == Decimal("0.0008")  # 8.0E-4 exactly
        assert got[("India", "service")] == Decimal("0.0014")
        assert ("Colombia", "authentication_international") not in got
        assert meta.rates[0].line == 5

    def test_xlsx_tier_file_with_float_volumes(self) -> None:
        data = xlsx_card([
            ["Cost per message in USD on the WhatsApp Business Platform, effective October 1, "
             "2026 - Reflecting volume tiers for utility and authentication messages"],
            ["Market\n(per rate card)", "", "Utility", "", "", "", ""],
            ["", "", "Messages (per month)", "", "What we charge", "", ""],
            ["", "Currency", "From", "To", "Rate type", "Rate", "vs. List rate"],
            ["Brazil", "USD", 0, 250000.0, "List rate", 0.0068, 0.0],
            ["", "USD", 250001.0, 1.0000001e7, "Tier rate", 0.0065, -0.05],
            ["", "USD", 10000002.0, "--", "Tier rate", 0.0061, -0.1],
        ], sheet="Sheet1")  # fmt: skip
        meta = read("tiers.xlsx", data)
        assert [(t.from_volume, t.to_volume, t.rate) for t in meta.tiers] == [
            (0, 250_000, Decimal("0.0068")), (250_000, 10_000_001, Decimal("0.0065")),
            (10_000_001, None, Decimal("0.0061")),
        ]  # fmt: skip

    def test_a_broken_workbook_fails_at_line_1(self) -> None:
        with pytest.raises(MetaFileError, match=r"^x\.csv:1: not a readable XLSX"):
            read("x.csv", b"PK\x03\x04garbage")


class TestImport:
    def test_import_adds_dated_rows_with_their_source_and_the_processor_prices_them(
        self, shipped: Path
    ) -> None:
        (shipped / "rates.csv").write_text(RATES_HEADER_WITH_SOURCE)  # an empty card
        out = run(shipped, [USD], None, dry_run=False)
        assert any("effective 2026-07-01, the date its title names" in line for line in out)
        assert any("restart" in line and "rerate" in line for line in out)
        book = load_ratebook(shipped)
        assert book.rate("India", "marketing", "USD", date(2026, 7, 15)) == Decimal("0.0118")
        text = (shipped / "rates.csv").read_text()
        digest = hashlib.sha256(USD.read_bytes()).hexdigest()
        assert f"2026-07-01,India,USD,marketing,0.0118,Meta file {USD.name} sha256:{digest}" in text

    def test_the_shipped_july_card_is_already_meta_file(self, shipped: Path) -> None:
        out = run(shipped, [USD, COP], None, dry_run=True)
        assert out[-1] == "dry run: 0 rows to add, 0 to change; nothing written"

    def test_a_cbp_card_with_a_lagging_title_is_imported_at_the_date_given(
        self, shipped: Path
    ) -> None:
        run(shipped, [CBP], date(2024, 6, 1), dry_run=False)
        book = load_ratebook(shipped)
        assert book.rate("Indonesia", "service", "USD", date(2024, 6, 15)) == Decimal("0.0190")
        assert book.rate("Indonesia", "service", "USD", date(2024, 5, 31)) is None

    def test_importing_the_same_files_twice_changes_nothing(self, shipped: Path) -> None:
        run(shipped, [USD, COP, TIERS], None, dry_run=False)
        before = snapshot(shipped)
        out = run(shipped, [USD, COP, TIERS], None, dry_run=False)
        assert out[-1] == "nothing to change: these files are already imported"
        assert snapshot(shipped) == before

    def test_dry_run_prints_the_rows_and_writes_nothing(self, config: Path) -> None:
        before = snapshot(config)
        out = run(config, [TIERS], None, dry_run=True)
        assert snapshot(config) == before
        assert "tiers.csv: add 2026-10-01,Brazil,USD,utility,250000,2000000,0.0065," in "\n".join(
            out
        )
        assert out[-1].startswith("dry run: 96 rows to add, 0 to change")

    def test_tiers_csv_and_rates_csv_are_created_when_absent(self, shipped: Path) -> None:
        (shipped / "rates.csv").unlink()
        (shipped / "tiers.csv").unlink()
        run(shipped, [TIERS, USD], None, dry_run=False)
        head = (shipped / "tiers.csv").read_text().splitlines()[0]
        assert head == "effective_from,market,currency,category,from_volume,to_volume,rate,source"
        head = (shipped / "rates.csv").read_text().splitlines()[0]
        assert head == "effective_from,market,currency,category,rate,source"
        assert len((shipped / "rates.csv").read_text().splitlines()) == 1 + 123

    def test_effective_overrides_the_title_and_says_so(self, config: Path) -> None:
        out = run(config, [TIERS], date(2026, 10, 15), dry_run=True)
        assert any("--effective 2026-10-15 (its title says 2026-10-01)" in line for line in out)
        assert any(",2026-10-15," in "," + line.split(": add ")[-1] for line in out)

    def test_a_changed_rate_on_the_same_date_is_a_change_not_a_second_row(
        self, config: Path
    ) -> None:
        run(config, [TIERS], None, dry_run=False)
        edited = config.parent / "edited.csv"
        edited.write_bytes(TIERS.read_bytes().replace(b"0.0051", b"0.0050"))
        out = run(config, [edited], None, dry_run=False)
        assert [line for line in out if ": change " in line] and "rows added" not in out[-2][:2]
        rows = [r for r in (config / "tiers.csv").read_text().splitlines()
                if r.startswith("2026-10-01,Brazil,USD,utility,")]  # fmt: skip
        assert len(rows) == 6 and rows[-1].startswith(
            "2026-10-01,Brazil,USD,utility,70000000,,0.0050,"
        )

    def test_an_unknown_market_lists_the_known_ones(self, config: Path) -> None:
        with pytest.raises(RatesImportError) as err:
            run(config, [USD], None, dry_run=False)
        message = str(err.value.message)
        assert message.startswith(f"{USD}:10: unknown market 'Chile' (known: Argentina, ")
        assert "Rest of Central & Eastern Europe" in message
        assert (config / "rates.csv").read_text().count("\n") == 1  # untouched

    def test_and_and_ampersand_spellings_of_a_region_are_one_market(self, config: Path) -> None:
        data = TIERS.read_bytes().replace(
            b"\r\nArgentina,", b"\r\nRest of Central and Eastern Europe,"
        )
        path = config.parent / "cee.csv"
        path.write_bytes(data)
        run(config, [path], None, dry_run=False)
        assert (
            "2026-10-01,Rest of Central & Eastern Europe,USD,utility,0,"
            in (config / "tiers.csv").read_text()
        )

    def test_a_file_it_cannot_read_writes_nothing(self, shipped: Path) -> None:
        before = snapshot(shipped)
        bad = shipped.parent / "bad.csv"
        bad.write_bytes(COP.read_bytes().replace(b"Peru,COP,258.8315", b"Peru,COP,n.a"))
        with pytest.raises(RatesImportError, match=r"bad\.csv:26: rate 'n\.a' is not a number"):
            run(shipped, [USD, bad], None, dry_run=False)  # the good file is not written either
        assert snapshot(shipped) == before

    def test_a_file_without_a_dated_title_needs_effective(self, config: Path) -> None:
        with pytest.raises(RatesImportError, match="pass --effective"):
            run(config, [MAPPING], None, dry_run=False)

    def test_the_mapping_file_adds_dated_market_rows_only_where_they_differ(
        self, shipped: Path
    ) -> None:
        out = run(shipped, [MAPPING], date(2026, 7, 1), dry_run=True)
        assert out[-1].startswith("dry run: 0 rows to add, 0 to change")  # agrees with markets.csv
        out = run(shipped, [MAPPING], date(2026, 6, 1), dry_run=True)
        assert "markets.csv: add 2026-06-01,HK,Hong Kong" in out  # standalone only from 2026-07

    def test_the_command_line(self, shipped: Path) -> None:
        env = {"BILLING_CONFIG_DIR": str(shipped)}
        result = CliRunner().invoke(main, ["rates", "import", str(USD), "--dry-run"], env=env)
        assert result.exit_code == 0, result.output
        assert "dry run:" in result.output
        result = CliRunner().invoke(
            main, ["rates", "import", str(USD), "--effective", "2026-13-01"], env=env
        )
        assert result.exit_code == 2 and "--effective" in result.output
        result = CliRunner().invoke(main, ["rates", "import", str(shipped / "nope.csv")], env=env)
        assert result.exit_code == 1 and "nope.csv:0: cannot be read" in result.output


def test_an_xlsx_card_is_imported_like_its_csv(config: Path, tmp_path: Path) -> None:
    """Meta's October 2026 links serve XLSX behind '.csv' names: imported as they are."""
    path = tmp_path / "USD_list_rates.csv"
    path.write_bytes(OCT_XLSX)
    run(config, [path], None, dry_run=False)
    rates = (config / "rates.csv").read_text()
    assert "2026-10-01,Colombia,USD,utility,0.0008,Meta file USD_list_rates.csv sha256:" in rates
    assert "2026-10-01,India,USD,service,0.0014," in rates
    assert load_ratebook(config).rate("India", "marketing", "USD", date(2026, 10, 1)) == Decimal(
        "0.0118"
    )
    before = snapshot(config)
    assert run(config, [path], None, dry_run=False)[-1].startswith("nothing to change")
    assert snapshot(config) == before


class TestMappingFile:
    def test_the_grouped_layout_gives_each_country_its_group_or_its_own_market(self) -> None:
        meta = read(MAPPING.name, MAPPING.read_bytes())
        got = {c.country: c.market for c in meta.mapping}
        assert got["HK"] == "Hong Kong" and got["CA"] == "North America"
        assert got["PR"] == "Rest of Latin America" and got["SZ"] == "Rest of Africa"
        assert got["UA"] == "Rest of Central and Eastern Europe"
        assert "" not in got and len(got) == 24  # 'All other countries' gives no row

    def test_the_flat_layout_is_read_too(self) -> None:
        text = (
            b"Market,Country,Calling Code,ISO Country Code\r\n"
            b"United Kingdom,United Kingdom,44,GB\r\nRest of Africa,Kenya,254,KE\r\n"
        )
        meta = read("flat.csv", text)
        assert {c.country: c.market for c in meta.mapping} == {
            "GB": "United Kingdom", "KE": "Rest of Africa"
        }  # fmt: skip

    def test_a_bad_iso_code_fails_with_its_line(self) -> None:
        text = MAPPING.read_bytes().replace(b"Brazil,55,BR", b"Brazil,55,BRA")
        with pytest.raises(MetaFileError, match=r"^m\.csv:5: ISO country code 'BRA'"):
            read("m.csv", text)

"""The command line: replay (through the same inbox and workers), report, export, archive."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.context import Context
from processor.core import parse
from tests import payloads as p

T0 = 1_762_000_000  # 2025-11-01, pmp-2025-07


def doc(n: int, t: int = T0) -> dict[str, Any]:
    user = f"5511{n:09d}"
    return p.body(
        p.change(
            statuses=[
                p.status(
                    f"wamid.{n}",
                    "delivered",
                    t + n,
                    user=user,
                    category="marketing",
                    pricing_type="regular",
                ),
            ]
        )
    )


def run(environ: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=environ, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def replayed(environ: dict[str, str], ctx: Context, tmp_path: Path) -> Path:
    lines = tmp_path / "bodies.jsonl"
    lines.write_text("".join(json.dumps({"body": json.dumps(doc(n))}) + "\n" for n in range(5)))
    single = tmp_path / "one.json"
    single.write_text(json.dumps(doc(99)))
    run(environ, "replay", str(lines), str(single))
    return tmp_path


def test_replay_processes_jsonl_and_json_files(replayed: Path, ctx: Context) -> None:
    assert ctx.queries.record_count(p.WABA, "2025-11") == 6


def test_replaying_twice_changes_nothing(
    replayed: Path, environ: dict[str, str], ctx: Context
) -> None:
    before = ctx.queries.usage(p.WABA, "2025-11", "USD")
    run(environ, "replay", str(replayed / "bodies.jsonl"))
    assert ctx.queries.usage(p.WABA, "2025-11", "USD") == before


def test_replay_names_the_bad_line(environ: dict[str, str], ctx: Context, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "{}"}\n{"nobody": 1}\n')
    result = CliRunner().invoke(main, ["replay", str(bad)], env=environ)
    assert result.exit_code != 0
    assert "bad.jsonl:2" in result.output


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_report_formats(replayed: Path, environ: dict[str, str], fmt: str) -> None:
    out = run(environ, "report", "--waba", p.WABA, "--month", "2025-11", "--format", fmt).output
    if fmt == "json":
        assert json.loads(out)["units"] == 6
    elif fmt == "csv":
        [row] = list(csv.DictReader(io.StringIO(out)))
        assert row["count"] == "6" and row["category"] == "marketing"
    else:
        assert "units 6" in out and "marketing" in out


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_every_record(replayed: Path, environ: dict[str, str], fmt: str) -> None:
    out = (
        CliRunner()
        .invoke(main, ["export", "--month", "2025-11", "--format", fmt], env=environ)
        .stdout
    )
    if fmt == "jsonl":
        records = [json.loads(line) for line in out.splitlines()]
    else:
        records = list(csv.DictReader(io.StringIO(out)))
    assert len(records) == 6
    assert {r["waba_id"] for r in records} == {p.WABA}


def test_archive_exports_what_replay_takes(
    replayed: Path, environ: dict[str, str], ctx: Context
) -> None:
    out = CliRunner().invoke(main, ["archive", "--since", "2000-01-01"], env=environ).stdout
    bodies = [json.loads(line)["body"] for line in out.splitlines()]
    assert len(bodies) == 6
    assert json.loads(bodies[-1]) == doc(99)


def test_report_rejects_a_bad_month(environ: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["report", "--waba", "1", "--month", "2025-13"], env=environ)
    assert result.exit_code == 2 and "YYYY-MM" in result.output


def test_quarantined_items_can_be_replayed_after_a_fix(
    environ: dict[str, str], ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body whose events were quarantined is applied when replayed after the cause is fixed."""
    item = p.status("wamid.q", "delivered", T0, category="marketing", pricing_type="regular")
    item["recipient_id"] = "5511 9999"  # the "bug": a number our parser refuses
    ctx.inbox.push(p.raw(p.body(p.change(statuses=[item]))))
    run(environ, "worker", "--burst")
    assert ctx.quarantine.list()["total"] == 1
    listing = run(environ, "quarantine", "list").output
    assert "recipient_id" in listing
    run(environ, "quarantine", "replay", "--all")
    run(environ, "worker", "--burst")  # not fixed yet: quarantined again, nothing counted
    assert ctx.quarantine.list()["total"] == 1
    assert ctx.queries.record_count(p.WABA, "2025-11") == 0
    monkeypatch.setattr(parse, "_USER", re.compile(r"[0-9 ]{4,20}"))  # the fix
    run(environ, "quarantine", "replay", "--all")
    run(environ, "worker", "--burst")
    assert ctx.quarantine.list()["total"] == 0
    assert ctx.queries.record_count(p.WABA, "2025-11") == 1


def test_malformed_config_is_refused_at_start_naming_the_place(
    environ: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "bad-config"
    config.mkdir()
    (config / "markets.csv").write_text("effective_from,country,market\n2020-01-01,BR,Brazil\n")
    (config / "rates.csv").write_text(
        "effective_from,market,currency,category,rate\n"
        "2020-01-01,Brazil,USD,marketting,0.06\n"
        "2020-01-01,Brazil,USD,utility,0,0068\n"
    )
    (config / "wabas.csv").write_text("waba_id,currency,timezone,portfolio_id\n1,USD,Mars/Base,\n")
    env = {**environ, "BILLING_CONFIG_DIR": str(config)}
    result = CliRunner().invoke(main, ["report", "--waba", "1", "--month", "2025-11"], env=env)
    assert result.exit_code == 1
    assert "rates.csv:2:4: unknown category 'marketting'" in result.output
    assert "rates.csv:3: expected 5 fields, found 6" in result.output
    assert "wabas.csv:2:3" in result.output and "Mars/Base" in result.output

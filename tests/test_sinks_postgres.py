"""The PostgreSQL sink: tables made and migrated, typed columns, batched upserts that never put
an older version over a newer one, usage by SQL equal to /v1/usage, old months read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from bench.traffic import generate
from processor.cli import main
from processor.context import Context
from processor.settings import Settings, load_settings
from processor.sinks import build_sinks
from processor.sinks.archive import Archive
from processor.sinks.base import Transient, Version
from processor.sinks.pgschema import migrate
from processor.sinks.postgres import PostgresSink
from processor.sinks.runner import Runner
from tests.conftest import auth
from tests.fault_helpers import drain_here, push_all
from tests.sink_helpers import push, record


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresSink]:
    sink = PostgresSink(pg_url)
    yield sink
    sink.close()


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def v(rec: dict[str, Any], n: int = 0) -> Version:
    return Version(f"1-{n}", rec)


def test_migrate_creates_typed_tables_and_runs_again_harmlessly(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert migrate(conn) == migrate(conn)
    types = dict(rows(pg_url, "SELECT column_name, data_type FROM information_schema.columns"
                              " WHERE table_name = 'billing_records'"))  # fmt: skip
    assert types["cost"] == types["billed_cost"] == types["rate"] == "numeric"
    assert types["charge_time"] == "timestamp with time zone"
    assert types["billable"] == types["void"] == "boolean"
    assert types["version"] == "integer" and types["extra"] == "jsonb"
    versions = {
        r[0]
        for r in rows(
            pg_url,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'billing_record_versions'",
        )
    }
    assert {"record_id", "version", "cost", "feed_id", "extra"} <= versions  # fmt: skip


def test_a_new_record_column_is_added_by_migrate(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    import processor.sinks.pgschema as schema

    monkeypatch.setattr(schema, "RECORD_COLUMNS", (*schema.RECORD_COLUMNS, "rate_source"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn)
    names = {r[0] for r in rows(pg_url, "SELECT column_name FROM information_schema.columns"
                                        " WHERE table_name = 'billing_records'")}  # fmt: skip
    assert "rate_source" in names


def test_unknown_record_fields_are_kept_in_extra(pg: PostgresSink, pg_url: str) -> None:
    pg.deliver([v(record("r1", 1, unit_currency="USD", rate_source={"file": "x.csv"}))])
    (extra,) = rows(pg_url, "SELECT extra FROM billing_records")[0]
    assert extra == {"unit_currency": "USD", "rate_source": {"file": "x.csv"}}
    assert Archive(pg_url).records_page("310000000000001", "2026-11", 0, 10)[0][0][
        "rate_source"
    ] == {"file": "x.csv"}


def test_money_is_numeric_and_exact(pg: PostgresSink, pg_url: str) -> None:
    pg.deliver([v(record("r1", 1, cost="0.0118", billed_cost="0.01298"))])
    assert rows(pg_url, "SELECT cost, billed_cost FROM billing_records") == [
        (Decimal("0.0118"), Decimal("0.01298"))
    ]


def test_an_older_version_never_overwrites_a_newer_one(pg: PostgresSink, pg_url: str) -> None:
    pg.deliver([v(record("r1", 2, cost="0.0500"), 2)])
    pg.deliver([v(record("r1", 1, cost="0.0625"), 1)])
    pg.deliver([v(record("r1", 3, cost="0.0400"), 3), v(record("r1", 2, cost="0.0500"), 2)])
    assert rows(pg_url, "SELECT version, cost FROM billing_records") == [(3, Decimal("0.0400"))]
    assert rows(pg_url, "SELECT version FROM billing_record_versions ORDER BY 1") == [
        (1,), (2,), (3,)
    ]  # fmt: skip


def test_a_replayed_batch_counts_once(pg: PostgresSink, pg_url: str) -> None:
    batch = [v(record(f"r{i}", 1), i) for i in range(50)]
    pg.deliver(batch)
    pg.deliver(batch)
    assert rows(pg_url, "SELECT count(*) FROM billing_record_versions") == [(50,)]
    assert rows(pg_url, "SELECT count(*), sum(cost) FROM billing_records") == [
        (50, Decimal("3.1250"))
    ]


def test_a_version_postgres_refuses_is_parked_and_the_rest_flows(ctx: Context, pg_url: str) -> None:
    push(ctx, record("r1", 1), record("r2", 1, cost="12x"), record("r3", 1))
    runner = Runner(ctx, [PostgresSink(pg_url)])
    assert runner.run(burst=True)
    assert rows(pg_url, "SELECT record_id FROM billing_records ORDER BY 1") == [("r1",), ("r3",)]
    (item,) = [json.loads(line) for line in _cli(ctx.settings, "sinks", "parked", "--sink",
                                                  "postgres").splitlines()]  # fmt: skip
    assert item["record_id"] == "r2" and "not a decimal" in item["reason"]


def test_postgres_down_is_transient_then_delivered(ctx: Context, pg_url: str) -> None:
    down = PostgresSink("postgresql://postgres@127.0.0.1:1/nowhere", timeout=1)
    with pytest.raises(Transient):
        down.deliver([v(record("r1", 1))])
    push(ctx, record("r1", 1))
    runner = Runner(ctx, [down])
    assert not runner.run(burst=True)  # gave up for this burst; nothing acknowledged
    assert Runner(ctx, [PostgresSink(pg_url)]).run(burst=True)
    assert rows(pg_url, "SELECT record_id, version FROM billing_records") == [("r1", 1)]


# -- a month of traffic: usage by SQL = /v1/usage; old months read from PostgreSQL --------------


@pytest.fixture
def billed(environ: dict[str, str], pg_url: str) -> Iterator[Context]:
    from processor.context import build_context
    from tests.conftest import _wipe

    settings = load_settings({**environ, "SINKS": "postgres", "POSTGRES_URL": pg_url})
    context = build_context(settings)
    try:
        push_all(context, generate(300, 20, seed=7).bodies)
        drain_here(context)
        assert Runner(context, build_sinks(context)).run(burst=True)
        yield context
    finally:
        _wipe(context.redis, settings)
        context.close()


def test_usage_by_the_documented_sql_equals_v1_usage(billed: Context, pg_url: str) -> None:
    months = billed.queries.months()
    assert months
    for waba, month in months:
        currency = billed.ratebook.waba(waba).currency
        expected = billed.queries.usage(waba, month, currency)
        got = Archive(pg_url).usage(waba, month, currency)
        assert _key(got) == _key(expected)
        assert got["total_cost"] == expected["total_cost"]
        assert got["total_billed_cost"] == expected["total_billed_cost"]


def _key(usage: dict[str, Any]) -> Any:
    lines = sorted(usage["lines"], key=lambda x: json.dumps(x, sort_keys=True))
    totals = {k: usage[k] for k in ("units", "unrated_units", "currency")}
    return totals, [{**x, "cost": Decimal(x["cost"]), "billed_cost": Decimal(x["billed_cost"])}
                    for x in lines]  # fmt: skip


def test_records_and_export_of_a_month_redis_no_longer_holds_come_from_postgres(
    billed: Context,
) -> None:
    from processor.web import create_app

    waba, month = billed.queries.months()[0]
    before = sorted(billed.queries.records(waba, month), key=lambda r: r["record_id"])
    billed.redis.delete(billed.keys.records(waba, month))  # retention ran out
    client = create_app(ctx=billed).test_client()
    got, cursor = [], 0
    while True:
        page = client.get(f"/v1/records?waba_id={waba}&month={month}&limit=37&cursor={cursor}",
                          headers=auth()).get_json()  # fmt: skip
        assert page["total"] == len(before)
        got += page["records"]
        cursor = page["next_cursor"] or 0
        if not cursor:
            break
    assert sorted(got, key=lambda r: r["record_id"]) == before
    lines = client.get(f"/v1/records?waba_id={waba}&month={month}&format=jsonl", headers=auth())
    assert len(lines.get_data(as_text=True).splitlines()) == len(before)
    out = _cli(billed.settings, "export", "--month", month, "--waba", waba)
    assert sorted((json.loads(x) for x in out.splitlines()), key=lambda r: r["record_id"]) == before


def _cli(settings: Settings, *args: str) -> str:
    env = {
        "REDIS_URL": settings.redis_url or "", "REDIS_PREFIX": settings.redis_prefix,
        "QUEUE_NAME": settings.queue_name, "SINKS": ",".join(settings.sinks),
        "POSTGRES_URL": settings.postgres_url or "",
    }  # fmt: skip
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_records_of_an_old_month_answer_503_while_postgres_is_away(ctx: Context) -> None:
    import dataclasses

    from processor.web import create_app

    away = dataclasses.replace(ctx.settings, postgres_url="postgresql://postgres@127.0.0.1:1/x")
    ctx.settings = away
    client = create_app(ctx=ctx).test_client()
    reply = client.get("/v1/records?waba_id=310000000000001&month=2025-01", headers=auth())
    assert reply.status_code == 503 and "archive" in reply.get_json()["detail"]

"""Periodic reconciliation (RECONCILE_EVERY_HOURS) and the reconciliation settings."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from processor.context import Context, build_context
from processor.core.reconcile import Tolerance
from processor.errors import SettingsError
from processor.reconciling import store
from processor.settings import load_settings
from tests import payloads as p
from tests.conftest import _wipe, signed_headers
from tests.graph_double import TOKEN, GraphDouble, graph_double, point
from workers import reconcile as periodic
from workers.drain import drain, use_context

T0 = 1_787_385_600  # 2026-08-22T08:00Z (inside the shipped July 2026 card)


@pytest.fixture
def graph() -> Iterator[GraphDouble]:
    with graph_double() as double:
        yield double


def make(environ: dict[str, str], graph: GraphDouble, **extra: str) -> Context:
    env = {**environ, "META_GRAPH_URL": graph.url, "META_ACCESS_TOKEN": TOKEN, **extra}
    return build_context(load_settings(env))


@pytest.fixture
def ctx_on(environ: dict[str, str], graph: GraphDouble) -> Iterator[Context]:
    ctx = make(environ, graph, RECONCILE_EVERY_HOURS="6")
    yield ctx
    _wipe(ctx.redis, ctx.settings)
    ctx.close()


def test_periodic_reconciliation_is_off_by_default(ctx: Context) -> None:
    assert ctx.settings.reconcile_every_hours == 0
    assert periodic.schedule_if_due(ctx) is False
    assert ctx.queue.count == 0


def test_one_job_per_period_whatever_the_number_of_workers(ctx_on: Context) -> None:
    assert periodic.schedule_if_due(ctx_on) is True
    assert periodic.schedule_if_due(ctx_on) is False  # another worker, same period
    assert ctx_on.queue.count == 1
    assert 0 < ctx_on.redis.ttl(ctx_on.keys.reconciliation_lock) <= 6 * 3600


def test_the_job_reconciles_every_waba_with_records(ctx_on: Context, graph: GraphDouble) -> None:
    from processor.web import create_app

    web = create_app(ctx=ctx_on).test_client()
    doc = p.body(
        p.change(statuses=[p.status("wamid.1", "delivered", T0, category="marketing",
                                    pricing_type="regular")])
    )  # fmt: skip
    body = p.raw(doc)
    assert web.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
    use_context(ctx_on)
    drain()
    graph.points[p.WABA] = [
        point(T0 - 8 * 3600, "5511900000000", "BR", "MARKETING", "REGULAR", 1, "0.0625")
    ]
    done = periodic.reconcile_all(now=T0 + 3600)
    assert done == {"reconciled": 1, "failed": 0}
    result = store(ctx_on).get(p.WABA, "2026-08")
    assert result is not None
    assert [x["status"] for x in result["lines"]] == ["match"]
    graph.fail(500, 2, times=20)
    assert periodic.reconcile_all(now=T0 + 7200) == {"reconciled": 0, "failed": 1}


def test_early_in_a_month_the_previous_month_is_reconciled_too(ctx: Context) -> None:
    dec_1 = 1_764_547_200
    assert periodic.due_months(ctx, p.WABA, dec_1 + 3600) == ["2025-11", "2025-12"]
    assert periodic.due_months(ctx, p.WABA, dec_1 + 3 * 86_400) == ["2025-12"]


def test_reconciliation_settings_are_read(environ: dict[str, str]) -> None:
    settings = load_settings(
        {
            **environ,
            "META_GRAPH_URL": "http://127.0.0.1:9/",
            "META_GRAPH_VERSION": "v24.0",
            "META_ACCESS_TOKEN": "secret-token",
            "RECONCILE_TOLERANCE": "0.02,1%",
            "RECONCILE_EVERY_HOURS": "12",
        }
    )
    assert settings.meta_graph_url == "http://127.0.0.1:9"
    assert settings.meta_graph_version == "v24.0"
    assert settings.reconcile_tolerance == Tolerance(Decimal("0.02"), Decimal("1"))
    assert settings.reconcile_every_hours == 12
    assert "secret-token" not in repr(settings)


def test_reconciliation_defaults(settings: Any) -> None:
    assert settings.meta_graph_url == "https://graph.facebook.com"
    assert settings.meta_graph_version == "v25.0"
    assert settings.meta_access_token == ""
    assert settings.reconcile_tolerance == Tolerance(Decimal("0.01"), Decimal("0.5"))


def test_bad_reconciliation_settings_are_all_named(environ: dict[str, str]) -> None:
    bad = {
        "META_GRAPH_URL": "ftp://x",
        "META_GRAPH_VERSION": "25",
        "RECONCILE_TOLERANCE": "lots",
        "RECONCILE_EVERY_HOURS": "-1",
    }
    with pytest.raises(SettingsError) as caught:
        load_settings({**environ, **bad})
    for name in bad:
        assert name in str(caught.value)


def test_reconcile_without_a_token_exits_2_and_says_why(environ: dict[str, str]) -> None:
    from click.testing import CliRunner

    from processor.cli import main

    args = ["reconcile", "--waba", p.WABA, "--month", "2025-11"]
    result = CliRunner().invoke(main, args, env=environ)
    assert result.exit_code == 2
    assert f"no token for WABA {p.WABA}" in result.stderr


def test_reconcile_refuses_a_bad_waba_or_month(environ: dict[str, str]) -> None:
    from click.testing import CliRunner

    from processor.cli import main

    for waba, month in (("abc", "2025-11"), (p.WABA, "2025-13"), (p.WABA, "0000-01")):
        args = ["reconcile", "--waba", waba, "--month", month]
        result = CliRunner().invoke(main, args, env=environ)
        assert result.exit_code == 2 and "Invalid value" in result.output, (waba, month)


def test_a_month_with_nothing_on_either_side_is_empty_not_an_error(
    environ: dict[str, str], graph: GraphDouble
) -> None:
    ctx = make(environ, graph)
    try:
        from processor.reconciling import run

        result = run(ctx, p.WABA, "2025-11")
        assert result["lines"] == [] and result["tiers"] == []
        assert result["totals"] == {
            "ours_volume": 0, "meta_volume": 0, "ours_cost": "0", "meta_cost": "0"
        }  # fmt: skip
    finally:
        _wipe(ctx.redis, ctx.settings)
        ctx.close()


def test_a_waba_can_have_its_own_token(
    environ: dict[str, str], graph: GraphDouble, tmp_path: Any
) -> None:
    """META_ACCESS_TOKENS_FILE: one `waba_id,token` a line; the others use META_ACCESS_TOKEN."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# per WABA\n{p.WABA},{TOKEN}\n")
    ctx = build_context(
        load_settings(
            {**environ, "META_ACCESS_TOKENS_FILE": str(tokens), "META_ACCESS_TOKEN": "general-x"}
        )
    )
    try:
        from processor.reconciling import token_for

        assert token_for(ctx, p.WABA) == TOKEN
        assert token_for(ctx, "999") == "general-x"
        assert TOKEN not in repr(ctx.settings)
    finally:
        ctx.close()


def test_a_malformed_token_file_is_refused_without_echoing_tokens(
    environ: dict[str, str], tmp_path: Any
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("not-a-waba,SECRET-TOKEN-VALUE\n")
    with pytest.raises(SettingsError) as caught:
        load_settings({**environ, "META_ACCESS_TOKENS_FILE": str(tokens)})
    assert "line 1" in str(caught.value)
    assert "SECRET-TOKEN-VALUE" not in str(caught.value)

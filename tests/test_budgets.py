"""Budgets: budgets.csv checked like the other config files, PUT/GET /v1/budgets, and one
alert per (WABA, month, threshold) crossed, whoever checks, however often, after restarts."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.budget_files import load_budgets
from processor.core.budget import Budget, parse_thresholds
from processor.errors import SettingsError
from processor.store.alerts import Alerts
from processor.store.budgets import Budgets
from processor.web import create_app
from tests import payloads as p
from tests.conftest import auth
from tests.money_helpers import MONTH, T0, brazil_users, config_dir, context_with, deliver

HEADER = "waba_id,monthly_budget,currency,thresholds\n"


def budgets_of(tmp_path: Path, text: str) -> dict[str, Budget]:
    return load_budgets(config_dir(tmp_path, budgets=HEADER + text))


# -- budgets.csv -----------------------------------------------------------------------------


def test_budgets_file_is_optional(tmp_path: Path) -> None:
    assert load_budgets(config_dir(tmp_path)) == {}


def test_budgets_file_rows_and_star_default(tmp_path: Path) -> None:
    found = budgets_of(tmp_path, f"{p.WABA},500.00,USD,50;80;100\n*,100,USD,90\n")
    assert found[p.WABA] == Budget(p.WABA, Decimal("500.00"), "USD", (50, 80, 100))
    assert found["*"].thresholds == (90,)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("abc,1,USD,50", "budgets.csv:2:1: waba_id 'abc' is not a WABA id or '*'"),
        ("1,-5,USD,50", "budgets.csv:2:2: monthly_budget '-5' is not a plain decimal"),
        ("1,1e3,USD,50", "budgets.csv:2:2: monthly_budget '1e3'"),
        ("1,5,usd,50", "budgets.csv:2:3: currency 'usd' is not 3 upper-case letters"),
        ("1,5,USD,80;50", "budgets.csv:2:4: thresholds '80;50' must be strictly increasing"),
        ("1,5,USD,0", "budgets.csv:2:4: thresholds '0': each must be from 1 to 1000"),
        ("1,5,USD,50,", "budgets.csv:2: expected 4 fields, found 5"),
        ("1,5,USD,", "budgets.csv:2:4: thresholds '' must be percentages"),
    ],
)
def test_budgets_file_problems_name_their_place(tmp_path: Path, row: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        budgets_of(tmp_path, row + "\n")
    assert any(x.startswith(problem) for x in caught.value.problems), caught.value.problems


def test_budgets_file_duplicate_waba_is_refused_and_all_problems_listed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        budgets_of(tmp_path, "1,5,USD,50\n1,6,USD,50\n2,x,USD,50\n")
    assert len(caught.value.problems) == 2
    assert "budgets.csv:3:1: duplicate waba_id '1' (first on line 2)" in caught.value.problems


def test_a_bad_budgets_file_stops_start_up(environ: dict[str, str], tmp_path: Path) -> None:
    directory = config_dir(tmp_path, budgets=HEADER + "1,5,USD,50;50\n")
    with pytest.raises(SettingsError), context_with(environ, directory):
        pass


# -- the rule --------------------------------------------------------------------------------


@given(
    amount=st.decimals(min_value=0, max_value=10_000, places=2),
    billed=st.decimals(min_value=0, max_value=30_000, places=4),
    thresholds=st.lists(st.integers(1, 1000), min_size=1, max_size=6, unique=True).map(sorted),
)
def test_threshold_crossed_iff_billed_reaches_its_share(
    amount: Decimal, billed: Decimal, thresholds: list[int]
) -> None:
    """A threshold is crossed exactly when billed >= budget x threshold / 100 (and something was
    billed); crossing is monotone: a higher threshold crossed means every lower one is."""
    budget = Budget("1", amount, "USD", tuple(thresholds))
    crossed = budget.crossed(billed)
    for t in thresholds:
        assert (t in crossed) == (billed > 0 and billed * 100 >= amount * t)
    assert list(crossed) == thresholds[: len(crossed)]


def test_thresholds_parse() -> None:
    assert parse_thresholds("50;80;100") == (50, 80, 100)
    with pytest.raises(ValueError):
        parse_thresholds("50;;80")


# -- alerts from real traffic ----------------------------------------------------------------

BUDGET_1USD = HEADER + f"{p.WABA},1.00,USD,50;80;100\n"


@pytest.fixture
def budgeted(environ: dict[str, str], tmp_path: Path) -> Any:
    with context_with(environ, config_dir(tmp_path, budgets=BUDGET_1USD)) as ctx:
        yield ctx


def budget_alerts(ctx: Any) -> list[dict[str, Any]]:
    return [a for a in Alerts(ctx.redis, ctx.keys).all() if a["kind"] == "budget"]


def test_budget_alert_fires_once_per_threshold_crossed_by_drained_traffic(budgeted: Any) -> None:
    """8 marketing messages in Brazil (0.0625 each) bill 0.50 of a 1.00 budget: the 50 %
    alert; 5 more (0.8125): the 80 % alert; draining again or more traffic below 100 % adds
    nothing; 3 more (1.00): the 100 % alert."""
    client = create_app(ctx=budgeted).test_client()
    users = brazil_users(16)
    deliver(client, budgeted, users[:8], tag="a")
    assert [a["data"]["threshold"] for a in budget_alerts(budgeted)] == [50]
    deliver(client, budgeted, users[8:13], T0 + 100, tag="b")
    deliver(client, budgeted, users[8:13], T0 + 100, tag="b")  # redelivered: no new cost
    alerts = budget_alerts(budgeted)
    assert sorted(a["data"]["threshold"] for a in alerts) == [50, 80]
    assert {a["data"]["billed_cost"] for a in alerts} == {"0.5000", "0.8125"}
    deliver(client, budgeted, users[13:16], T0 + 200, tag="c")
    alerts = budget_alerts(budgeted)
    assert sorted(a["data"]["threshold"] for a in alerts) == [50, 80, 100]
    assert all(a["waba_id"] == p.WABA and a["data"]["month"] == MONTH for a in alerts)
    assert budgeted.redis.xlen(budgeted.keys.alerts_outbox) == 3


def test_alerts_are_once_only_under_racing_checkers_and_a_restart(
    budgeted: Any, environ: dict[str, str], tmp_path: Path
) -> None:
    """Two workers (own connections) checking the same month 50 times each at once, then a
    restarted process checking again: three alerts, three outbox entries, never more."""
    client = create_app(ctx=budgeted).test_client()
    deliver(client, budgeted, brazil_users(16))
    budgeted.redis.delete(budgeted.keys.alerts, budgeted.keys.alerts_outbox)  # check afresh
    directory = Path(budgeted.settings.config_dir)
    recorded: list[int] = []
    start = threading.Barrier(2)

    def worker() -> None:
        with_prefix = {**environ, "REDIS_PREFIX": budgeted.settings.redis_prefix}
        from processor.context import build_context
        from processor.settings import load_settings

        settings = load_settings({**with_prefix, "BILLING_CONFIG_DIR": str(directory)})
        own = build_context(settings)
        watch = Budgets(own.redis, own.keys, own.ratebook, own.budget_file)
        start.wait()
        for _ in range(50):
            recorded.append(len(watch.check(p.WABA, MONTH)))
        own.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(recorded) == 3
    # a restart: a new context and store, the same Redis
    from processor.context import build_context

    again = build_context(budgeted.settings)
    watch = Budgets(again.redis, again.keys, again.ratebook, again.budget_file)
    assert watch.check(p.WABA, MONTH) == []
    again.close()
    assert len(budget_alerts(budgeted)) == 3
    assert budgeted.redis.xlen(budgeted.keys.alerts_outbox) == 3


# -- the API ---------------------------------------------------------------------------------


def test_put_then_get_budget_override(budgeted: Any) -> None:
    client = create_app(ctx=budgeted).test_client()
    deliver(client, budgeted, brazil_users(4))  # 0.25 billed
    url = f"/v1/budgets/{p.WABA}?month={MONTH}"
    got = client.get(url, headers=auth()).json
    assert got["source"] == "file"
    assert got["budget"]["monthly_budget"] == "1.00"
    assert got["billed_cost"] == "0.2500"
    assert got["used_ratio"] == "0.250000"
    assert got["thresholds_crossed"] == []
    reply = client.put(
        url, json={"monthly_budget": "0.40", "currency": "USD", "thresholds": [25, 50]},
        headers=auth(),
    )  # fmt: skip
    assert reply.status_code == 200, reply.json
    assert reply.json["source"] == "override"
    assert reply.json["thresholds_crossed"] == [25, 50]
    # setting a lower budget that is crossed already fires its alerts at once
    assert sorted(a["data"]["threshold"] for a in budget_alerts(budgeted)) == [25, 50]
    assert client.get(url, headers=auth()).json["budget"]["thresholds"] == [25, 50]


def test_star_budget_applies_to_every_other_waba(environ: dict[str, str], tmp_path: Path) -> None:
    directory = config_dir(tmp_path, budgets=HEADER + "*,10,USD,50\n")
    with context_with(environ, directory) as ctx:
        reply = create_app(ctx=ctx).test_client().get("/v1/budgets/999", headers=auth())
        assert reply.json["source"] == "default"
        assert reply.json["budget"]["waba_id"] == "999"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"monthly_budget": "5", "currency": "EUR"}, "currency must be the WABA's"),
        ({"monthly_budget": 5, "currency": "USD"}, "'monthly_budget' (a decimal string)"),
        ({"monthly_budget": "5", "currency": "USD", "thresholds": [80, 50]}, "increasing"),
        ({"monthly_budget": "5", "currency": "USD", "thresholds": [True]}, "thresholds"),
        ({"monthly_budget": "-1", "currency": "USD"}, "not a plain decimal"),
    ],
)
def test_bad_budget_is_400(client: Any, body: dict[str, Any], detail: str) -> None:
    reply = client.put(f"/v1/budgets/{p.WABA}", json=body, headers=auth())
    assert reply.status_code == 400
    assert detail in reply.json["detail"]


def test_budgets_need_the_token(client: Any) -> None:
    assert client.get(f"/v1/budgets/{p.WABA}").status_code == 401
    put = client.put(f"/v1/budgets/{p.WABA}", json={"monthly_budget": "5", "currency": "USD"})
    assert put.status_code == 401


def test_quote_says_over_budget(budgeted: Any) -> None:
    """15 sends bill 0.9375 of 1.00: one more marketing message (0.0625) reaches 1.00, not
    past it; after a 16th, one more is over budget."""
    client = create_app(ctx=budgeted).test_client()
    users = brazil_users(17)
    deliver(client, budgeted, users[:15])
    body = {"phone_number_id": p.PHONE, "user_id": users[16], "category": "marketing",
            "at": "2025-11-23T08:00:00Z", "waba_id": p.WABA}  # fmt: skip
    assert client.post("/v1/quote", json=body, headers=auth()).json["over_budget"] is False
    deliver(client, budgeted, users[15:16], T0 + 500, tag="x")
    assert client.post("/v1/quote", json=body, headers=auth()).json["over_budget"] is True


def test_no_budget_means_over_budget_is_null(client: Any) -> None:
    body = {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "marketing",
            "waba_id": p.WABA}  # fmt: skip
    assert client.post("/v1/quote", json=body, headers=auth()).json["over_budget"] is None


def test_metrics_show_budget_used_ratio(budgeted: Any) -> None:
    client = create_app(ctx=budgeted).test_client()
    text = client.get("/metrics").data.decode()
    assert "wa_billing_alerts_sent_total 0.0" in text
    assert "wa_billing_alerts_failed_total 0.0" in text
    # the current month has no traffic: the ratio is 0 for the WABA with a budget
    assert f'wa_billing_budget_used_ratio{{waba_id="{p.WABA}"}} 0.0' in text

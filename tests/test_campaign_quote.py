"""Campaign quotes: the quote for N recipients equals what delivering those N messages then
bills (sent through the real webhook -> drain -> ledger), tiers and allowances numbered over
the whole batch in order; the quote changes nothing; bad requests are 400."""

from __future__ import annotations

import json
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.context import Context
from processor.web import create_app
from tests import payloads as p
from tests.conftest import auth
from tests.money_helpers import MONTH, T0, brazil_users, config_dir, context_with, deliver, post

TIERS = (
    "effective_from,market,currency,category,from_volume,to_volume,rate\n"
    "2025-07-01,Brazil,USD,utility,0,3,0.0068\n"
    "2025-07-01,Brazil,USD,utility,3,,0.0050\n"
    "2025-07-01,India,USD,utility,0,100000,0.0014\n"
    "2025-07-01,India,USD,utility,100000,,0.0010\n"
)
MARKUP = f"waba_id,percent,fixed_per_unit\n{p.WABA},10,0.0001\n"
AT = T0 + 3_600
AT_ISO = "2025-11-22T09:00:00Z"


@pytest.fixture
def tiered(environ: dict[str, str], tmp_path: Path) -> Any:
    with context_with(environ, config_dir(tmp_path, tiers=TIERS, markup=MARKUP)) as ctx:
        yield ctx


def india_users(n: int) -> list[str]:
    return [f"9198{i:08d}" for i in range(n)]


def usage(client: Any) -> dict[str, Any]:
    reply = client.get(f"/v1/usage?waba_id={p.WABA}&month={MONTH}", headers=auth())
    doc: dict[str, Any] = reply.json
    return doc


def campaign(client: Any, recipients: list[str], category: str = "utility") -> dict[str, Any]:
    body = {"phone_number_id": p.PHONE, "category": category, "at": AT_ISO,
            "recipients": recipients}  # fmt: skip
    reply = client.post("/v1/quote/campaign", json=body, headers=auth())
    assert reply.status_code == 200, reply.json
    doc: dict[str, Any] = reply.json
    return doc


def records_of(client: Any, wamids: set[str]) -> list[dict[str, Any]]:
    query = f"/v1/records?waba_id={p.WABA}&month={MONTH}&format=jsonl"
    lines = client.get(query, headers=auth()).data.decode().splitlines()
    return [r for r in map(json.loads, lines) if r["wamid"] in wamids]


def test_campaign_quote_equals_what_delivering_it_bills(tiered: Context) -> None:
    """Two utility messages in Brazil are in this month's tier bucket already; the campaign
    sends to 6 Brazilian users (one inside its customer service window: free, but it still
    takes a place in the tier bucket) and 3 Indian users. The batch crosses Brazil's tier
    boundary at 3: the quote says so per market, then delivering the same messages bills
    exactly the quoted totals, tier by tier."""
    client = create_app(ctx=tiered).test_client()
    deliver(client, tiered, brazil_users(2, start=900), category="utility", tag="old")
    brazil, india = brazil_users(6), india_users(3)
    post(client, p.body(p.change(messages=[p.inbound("wamid.in", AT - 600, user=brazil[2])])))
    deliver(client, tiered, [], category="utility")  # drain the inbound message
    before = usage(client)
    recipients = [*brazil, *india]

    quoted = campaign(client, recipients)

    assert quoted["recipients"] == 9
    assert quoted["opens_charge"] == 9
    assert quoted["billable"] == 8
    markets = {m["market"]: m for m in quoted["markets"]}
    br = markets["Brazil"]
    assert br["free"] == {"free_customer_service": 1}
    # places 3..8 in Brazil's bucket: place 3 in the first tier, 4..8 in the second; the free
    # message (third in order, place 5) takes a place but is not charged
    assert [(r["tier"], r["count"]) for r in br["rates"]] == [("1:3", 1), ("4:", 4)]
    assert [b["before"] for b in quoted["buckets"] if b["market"] == "Brazil"] == [2]
    assert markets["India"]["rates"][0]["count"] == 3

    deliver(client, tiered, recipients, AT, "utility", tag="camp",
            free_in_csw=frozenset({brazil[2]}))  # fmt: skip
    after = usage(client)
    billed_records = records_of(client, {f"wamid.camp{i}" for i in range(9)})
    assert len(billed_records) == 9
    assert Decimal(after["total_cost"]) - Decimal(before["total_cost"]) == Decimal(
        quoted["total_cost"]
    )
    assert Decimal(after["total_billed_cost"]) - Decimal(before["total_billed_cost"]) == Decimal(
        quoted["total_billed_cost"]
    )
    for market, tally in markets.items():
        mine = [r for r in billed_records if r["market"] == market]
        assert len(mine) == tally["recipients"]
        assert sum(r["billable"] for r in mine) == tally["billable"]
        tiers = Counter((r["tier"], r["rate"], r["billed_rate"]) for r in mine if r["billable"])
        assert tiers == Counter({(x["tier"], x["rate"], x["billed_rate"]): x["count"]
                                 for x in tally["rates"]})  # fmt: skip
        assert sum(Decimal(r["cost"]) for r in mine) == Decimal(tally["cost"])


def test_campaign_quote_changes_nothing(tiered: Context) -> None:
    client = create_app(ctx=tiered).test_client()
    deliver(client, tiered, brazil_users(3), category="utility")

    def snapshot() -> dict[bytes, Any]:
        keys = sorted(tiered.redis.scan_iter(f"{tiered.keys.prefix}:*"))
        return {k: tiered.redis.dump(k) for k in keys}

    before = snapshot()
    campaign(client, brazil_users(50, start=100))
    campaign(client, brazil_users(3))
    assert snapshot() == before


def test_campaign_of_a_free_form_message_outside_the_window_is_not_allowed(client: Any) -> None:
    body = {"phone_number_id": p.PHONE, "category": "service", "template": False,
            "waba_id": p.WABA, "recipients": brazil_users(2)}  # fmt: skip
    reply = client.post("/v1/quote/campaign", json=body, headers=auth())
    assert reply.json["allowed"] == 0
    assert reply.json["markets"][0]["reasons"] == {"csw_closed": 2}
    assert reply.json["total_cost"] == "0"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"recipients": []}, "'recipients' must be a list of 1 to 100000"),
        ({"recipients": ["5511900000001"] * 2}, "appears more than once"),
        ({"recipients": ["x"]}, "every recipient must be"),
        ({"recipients": "5511900000001"}, "'recipients' must be a list"),
        ({"recipients": [f"55119{i:08d}" for i in range(100_001)]}, "1 to 100000"),
        ({"category": "service"}, "not a template category"),
        ({"template": "yes"}, "'template' must be true or false"),
        ({"at": "2025-11-22T09:00:00"}, "time zone"),
        ({"waba_id": None, "phone_number_id": "1"}, "unknown phone_number_id"),
    ],
)
def test_bad_campaign_request_is_400(client: Any, change: dict[str, Any], detail: str) -> None:
    body = {"phone_number_id": p.PHONE, "category": "marketing", "waba_id": p.WABA,
            "recipients": ["5511900000001"], **change}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    reply = client.post("/v1/quote/campaign", json=body, headers=auth())
    assert reply.status_code == 400
    assert detail in reply.json["detail"]


def test_a_campaign_of_100000_recipients_is_quoted(client: Any) -> None:
    """The largest batch allowed, answered in one request (timed; a bound only against a
    hang, never a speed claim)."""
    recipients = [f"55119{i:08d}" for i in range(100_000)]
    started = time.monotonic()
    quoted = campaign_body(client, recipients)
    elapsed = time.monotonic() - started
    assert quoted["recipients"] == 100_000
    assert Decimal(quoted["total_cost"]) == Decimal("0.0625") * 100_000
    assert elapsed < 300, elapsed


def campaign_body(client: Any, recipients: list[str]) -> dict[str, Any]:
    body = {"phone_number_id": p.PHONE, "category": "marketing", "waba_id": p.WABA,
            "at": AT_ISO, "recipients": recipients}  # fmt: skip
    reply = client.post("/v1/quote/campaign", json=body, headers=auth())
    assert reply.status_code == 200, reply.json
    doc: dict[str, Any] = reply.json
    return doc


def test_cli_quote_with_a_recipients_file(
    tiered: Context, environ: dict[str, str], tmp_path: Path
) -> None:
    """``wa-billing quote --recipients FILE`` answers what the API answers."""
    client = create_app(ctx=tiered).test_client()
    deliver(client, tiered, brazil_users(1, start=500), category="utility")  # the number known
    users = [*brazil_users(4), *india_users(2)]
    path = tmp_path / "recipients.txt"
    path.write_text("# campaign\nuser_id\n" + "\n".join(users) + "\n\n")
    env = {**environ, "BILLING_CONFIG_DIR": str(tiered.settings.config_dir),
           "REDIS_PREFIX": tiered.settings.redis_prefix}  # fmt: skip
    args = ["quote", "--recipients", str(path), "--phone-number-id", p.PHONE,
            "--category", "utility", "--at", AT_ISO]  # fmt: skip
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == campaign(client, users)
    bad = CliRunner().invoke(main, [*args[:2], str(path), "--phone-number-id", "x", *args[4:]],
                             env=env)  # fmt: skip
    assert bad.exit_code == 2

"""POST /v1/quote: the cost of a message before it is sent; it changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from processor.context import Context
from tests import payloads as p
from tests.conftest import auth
from tests.ledger_helpers import snapshot
from tests.test_pipeline import post, run_workers

# pmp-2025-07, inside the shipped USD card of 2026-07-01 (issue 9: the shipped config holds
# Meta's published rates only; the earlier invented rows, which this file's 2025-11 dates used,
# are gone)
AUG_2026 = int(datetime(2026, 8, 10, tzinfo=UTC).timestamp())
NOV_2025 = AUG_2026  # the name the cases below were written with
H = 3_600


def iso(t: int) -> str:
    from processor.store.ops import iso as to_iso

    text = to_iso(t)
    assert text is not None
    return text


def ask(client: Any, **fields: Any) -> Any:
    body = {"phone_number_id": p.PHONE, "user_id": p.USER, **fields}
    return client.post("/v1/quote", json=body, headers=auth())


@pytest.fixture
def chatting(client: Any, ctx: Context) -> None:
    """A user wrote at NOV_2025; a marketing template was delivered an hour before."""
    post(client, p.body(p.change(messages=[p.inbound("wamid.in", NOV_2025)])))
    post(client, p.body(p.change(statuses=[
        p.status("wamid.m", "delivered", NOV_2025 - H, category="marketing",
                 pricing_type="regular"),
    ])))  # fmt: skip
    run_workers(ctx)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"category": "utility", "at": NOV_2025 + H},
         {"opens_charge": True, "billable": False, "reason": "utility_free_in_csw", "cost": "0"}),
        ({"category": "utility", "at": NOV_2025 + 30 * H},  # no public tier table before 2026-10
         {"opens_charge": True, "billable": True, "reason": "per_message_charge",
          "cost": "0.0068", "tier": None}),
        ({"category": "marketing", "at": NOV_2025 + H},
         {"billable": True, "cost": "0.0625", "market": "Brazil", "currency": "USD"}),
        ({"category": "service", "template": False, "at": NOV_2025 + H},
         {"allowed": True, "billable": False, "reason": "csw_open"}),
        ({"category": "service", "template": False, "at": NOV_2025 + 25 * H},
         {"allowed": False, "reason": "csw_closed"}),
    ],
    ids=["utility-in-csw", "utility-outside-csw", "marketing", "free-form-in-csw",
         "free-form-after-csw"],
)  # fmt: skip
def test_quote_under_per_message_pricing(
    client: Any, chatting: None, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    reply = ask(client, **{**fields, "at": iso(fields["at"])})
    assert reply.status_code == 200, reply.json
    assert {k: reply.json[k] for k in expected} == expected


def test_quote_names_metas_volume_tier(client: Any, chatting: None) -> None:
    """From 2026-10-01 the shipped config has Meta's Brazil utility tiers (first: 0-250,000)."""
    at = int(datetime(2026, 11, 10, tzinfo=UTC).timestamp())
    reply = ask(client, category="utility", at=iso(at)).json
    assert (reply["billable"], reply["cost"], reply["tier"]) == (True, "0.0068", "1:250000")
    assert reply["volume"] == {"position": 1, "tier": "1:250000"}


def test_quote_changes_nothing(client: Any, ctx: Context, chatting: None) -> None:
    before = snapshot(ctx.redis, ctx.settings.redis_prefix)
    history = ctx.redis.hgetall(ctx.keys.pair(_pair()))
    for category in ("utility", "marketing", "authentication"):
        assert ask(client, category=category, at=iso(NOV_2025 + H)).status_code == 200
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == before
    assert ctx.redis.hgetall(ctx.keys.pair(_pair())) == history


def _pair() -> Any:
    from processor.core.events import Pair

    return Pair(p.WABA, p.PHONE, p.USER)


def test_quote_inside_an_open_conversation_opens_nothing(client: Any, ctx: Context) -> None:
    """cbp-2023: a template of a category whose conversation is open joins it."""
    t0 = 1_700_000_000
    post(client, p.body(p.change(statuses=[
        p.status("wamid.c", "delivered", t0, category="marketing", conversation_id="c1"),
    ])))  # fmt: skip
    run_workers(ctx)
    same = ask(client, category="marketing", at=iso(t0 + 2 * H)).json
    assert (same["opens_charge"], same["reason"]) == (False, "open_conversation")
    assert same["joins_record_id"] is not None
    other = ask(client, category="utility", at=iso(t0 + 2 * H)).json
    assert (other["opens_charge"], other["reason"], other["kind"]) == (
        True, "new_conversation", "conversation")  # fmt: skip


def test_quote_counts_the_allowance_left(client: Any, ctx: Context) -> None:
    """pmp-2026-10: service messages are free while the number's 1,000 last."""
    oct_2026 = 1_790_812_800 + 5 * 86_400
    post(client, p.body(p.change(messages=[p.inbound("wamid.in", oct_2026)], statuses=[
        p.status(f"wamid.s{n}", "delivered", oct_2026 + n, category="service")
        for n in range(1, 4)
    ])))  # fmt: skip
    run_workers(ctx)
    reply = ask(client, category="service", template=False, at=iso(oct_2026 + 60)).json
    assert reply["allowance"] == {"limit": 1000, "used": 3, "left": 997}
    assert (reply["billable"], reply["free_reason"]) == (False, "free_tier")


@pytest.mark.parametrize(
    "body",
    [{}, {"phone_number_id": p.PHONE, "user_id": p.USER},
     {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "marketing", "at": "yesterday"},
     {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "marketing", "template": "yes"},
     {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "bogus"},
     {"phone_number_id": "999", "user_id": p.USER, "category": "marketing"},
     {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "marketing",
      "at": "2025-11-10T10:00:00"}],
    ids=["empty", "no-category", "bad-at", "bad-template", "bad-category", "unknown-phone",
         "naive-at"],
)  # fmt: skip
def test_bad_quote_request_is_400(client: Any, chatting: None, body: dict[str, Any]) -> None:
    reply = client.post("/v1/quote", json=body, headers=auth())
    assert reply.status_code == 400, reply.json

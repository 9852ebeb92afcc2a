"""Pending: a delivered message whose category is not known yet is held and listed, not guessed."""

from __future__ import annotations

from typing import Any

from processor.context import Context
from tests import payloads as p
from tests.conftest import auth
from tests.test_pipeline import post, run_workers

NOV_2025 = 1_762_000_000 + 9 * 86_400
DAY = 86_400


def pending(client: Any) -> list[dict[str, Any]]:
    reply = client.get(f"/v1/pending?waba_id={p.WABA}", headers=auth())
    assert reply.status_code == 200
    return list(reply.json["items"])


def delivered_without_pricing(wamid: str, t: int) -> dict[str, Any]:
    return p.body(p.change(statuses=[p.status(wamid, "delivered", t)]))


def test_unknown_category_is_listed_not_charged(client: Any, ctx: Context) -> None:
    post(client, delivered_without_pricing("wamid.u", NOV_2025))
    run_workers(ctx)
    [item] = pending(client)
    assert (item["wamid"], item["reason"]) == ("wamid.u", "category not known yet")
    assert ctx.queries.record_count(p.WABA, "2025-11") == 0


def test_pending_message_is_charged_once_its_pricing_arrives(client: Any, ctx: Context) -> None:
    post(client, delivered_without_pricing("wamid.u", NOV_2025))
    run_workers(ctx)
    sent = p.status("wamid.u", "sent", NOV_2025 - 2, category="marketing", pricing_type="regular")
    post(client, p.body(p.change(statuses=[sent])))
    run_workers(ctx)
    assert pending(client) == []
    [record] = list(ctx.queries.records(p.WABA, "2025-11"))
    assert (record["category"], record["billable"]) == ("marketing", True)


def test_pending_message_stays_listed_past_the_pair_horizon(client: Any, ctx: Context) -> None:
    """Trimming a pair's history must not drop a pending message silently."""
    post(client, delivered_without_pricing("wamid.u", NOV_2025))
    run_workers(ctx)
    later = p.status("wamid.v", "delivered", NOV_2025 + 12 * DAY, category="marketing",
                     pricing_type="regular")  # fmt: skip
    post(client, p.body(p.change(statuses=[later])))
    run_workers(ctx)
    [item] = pending(client)
    assert item["wamid"] == "wamid.u"
    assert item["reason"].startswith("past the pair's history horizon")

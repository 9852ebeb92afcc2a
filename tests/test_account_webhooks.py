"""Template and tier webhooks: stored through the inbox like `messages`, routed by field in the
drain; the template registry with its category history; recategorisation alerts (once each);
Meta's tier webhooks; display numbers learnt from `metadata`."""

from __future__ import annotations

import json
from typing import Any

from processor.context import Context
from processor.core.account_events import account_facts
from processor.store.alerts import Alerts
from processor.store.meta_state import RECATEGORISED, MetaState
from tests import payloads as p
from tests.conftest import auth, signed_headers
from workers.drain import drain, use_context

T0 = 1_763_798_400
TEMPLATE = 278077987957091


def change(field: str, value: dict[str, Any], at: int, waba: str = p.WABA) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "time": at, "changes": [{"field": field, "value": value}]}],
    }


def status_update(event: str, category: str, at: int) -> dict[str, Any]:
    return change(
        "message_template_status_update",
        {
            "event": event,
            "message_template_id": TEMPLATE,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "reason": "NONE",
            "message_template_category": category,
        },
        at,
    )


def category_update(previous: str, new: str, at: int) -> dict[str, Any]:
    return change(
        "template_category_update",
        {
            "message_template_id": TEMPLATE,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "previous_category": previous,
            "new_category": new,
        },
        at,
    )


def tier_update(tier: str, when: int) -> dict[str, Any]:
    return change(
        "account_update",
        {
            "event": "VOLUME_BASED_PRICING_TIER_UPDATE",
            "volume_tier_info": {
                "effective_month": "2025-11",
                "pricing_category": "UTILITY",
                "region": "BRAZIL",
                "tier": tier,
                "tier_update_time": when,
            },
        },
        when,
    )


def deliver(client: Any, ctx: Context, *docs: dict[str, Any]) -> None:
    for doc in docs:
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
    use_context(ctx)
    drain()


def recategorised(ctx: Context) -> list[dict[str, Any]]:
    return [a for a in Alerts(ctx.redis, ctx.keys).all() if a["kind"] == RECATEGORISED]


def test_templates_are_registered_with_their_category_history(client: Any, ctx: Context) -> None:
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0))
    deliver(client, ctx, category_update("UTILITY", "MARKETING", T0 + 86_400))
    reply = client.get("/v1/templates", headers=auth())
    assert reply.status_code == 200
    (item,) = reply.json["items"]
    assert reply.json["total"] == 1
    assert (item["template_id"], item["waba_id"], item["name"], item["language"]) == (
        str(TEMPLATE),
        p.WABA,
        "order_update",
        "en_US",
    )
    assert (item["category"], item["status"], item["updated_at"]) == (
        "marketing",
        "APPROVED",
        T0 + 86_400,
    )
    assert [(h["event"], h["category"]) for h in item["history"]] == [
        ("APPROVED", "utility"),
        ("CATEGORY_CHANGED", "marketing"),
    ]


def test_a_change_between_categories_is_recorded_as_an_alert_once(
    client: Any, ctx: Context
) -> None:
    update = category_update("UTILITY", "MARKETING", T0)
    deliver(client, ctx, update)
    deliver(client, ctx, update, update)  # Meta delivers at least once
    (alert,) = recategorised(ctx)
    assert alert["waba_id"] == p.WABA
    assert alert["data"]["previous_category"] == "utility"
    assert alert["data"]["new_category"] == "marketing"
    assert alert["data"]["template_id"] == str(TEMPLATE)
    assert alert["delivery"]["state"] == "pending"  # the dashboard issue delivers it
    assert ctx.redis.xlen(ctx.keys.alerts_outbox) == 1


def test_a_status_update_with_another_category_is_a_change_too(client: Any, ctx: Context) -> None:
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0))
    deliver(client, ctx, status_update("APPROVED", "MARKETING", T0 + 60))
    assert [(a["data"]["previous_category"], a["data"]["new_category"])
            for a in recategorised(ctx)] == [("utility", "marketing")]  # fmt: skip


def test_same_category_again_is_no_alert(client: Any, ctx: Context) -> None:
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0))
    deliver(client, ctx, status_update("PAUSED", "UTILITY", T0 + 60))
    assert recategorised(ctx) == []
    (item,) = client.get("/v1/templates", headers=auth()).json["items"]
    assert item["status"] == "PAUSED"


def test_out_of_order_webhooks_keep_the_history_in_time_order(client: Any, ctx: Context) -> None:
    deliver(client, ctx, category_update("UTILITY", "MARKETING", T0 + 100))
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0))
    (item,) = client.get("/v1/templates", headers=auth()).json["items"]
    assert [h["at"] for h in item["history"]] == [T0, T0 + 100]
    assert item["category"] == "marketing"


def test_an_impending_change_is_kept_but_changes_nothing_yet(client: Any, ctx: Context) -> None:
    impending = change(
        "template_category_update",
        {
            "message_template_id": TEMPLATE,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "correct_category": "MARKETING",
            "new_category": "UTILITY",
            "category_update_timestamp": T0 + 86_400,
        },
        T0,
    )
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0 - 60), impending)
    (item,) = client.get("/v1/templates", headers=auth()).json["items"]
    assert item["category"] == "utility"
    assert item["history"][-1]["correct_category"] == "marketing"
    assert recategorised(ctx) == []


def test_templates_can_be_listed_per_waba(client: Any, ctx: Context) -> None:
    deliver(client, ctx, status_update("APPROVED", "UTILITY", T0))
    assert client.get("/v1/templates?waba_id=999", headers=auth()).json["total"] == 0
    assert client.get(f"/v1/templates?waba_id={p.WABA}", headers=auth()).json["total"] == 1
    assert client.get("/v1/templates?waba_id=abc", headers=auth()).status_code == 400
    assert client.get("/v1/templates").status_code == 401


def test_tier_webhooks_are_stored_once_with_the_earliest_time(client: Any, ctx: Context) -> None:
    deliver(client, ctx, tier_update("750001:2000000", T0 + 50), tier_update("750001:2000000", T0))
    deliver(client, ctx, tier_update("2000001:MAX", T0 + 99))
    updates = MetaState(ctx.redis, ctx.keys).tier_updates(p.WABA, "2025-11")
    assert [(u["tier"], u["tier_update_time"]) for u in updates] == [
        ("750001:2000000", T0),
        ("2000001:MAX", T0 + 99),
    ]
    assert MetaState(ctx.redis, ctx.keys).tier_updates(p.WABA, "2025-12") == []


def test_display_numbers_are_learnt_from_webhook_metadata(client: Any, ctx: Context) -> None:
    deliver(client, ctx, p.body(p.change(messages=[p.inbound("wamid.1", T0)])))
    assert MetaState(ctx.redis, ctx.keys).display_numbers() == {p.PHONE: "5511900000000"}


def test_a_malformed_template_change_is_quarantined_and_the_rest_kept(
    client: Any, ctx: Context
) -> None:
    bad = change("message_template_status_update", {"event": "APPROVED"}, T0)
    bad["entry"][0]["changes"].append(status_update("APPROVED", "UTILITY", T0)["entry"][0]
                                      ["changes"][0])  # fmt: skip
    deliver(client, ctx, bad)
    items = ctx.quarantine.list(10)["items"]
    assert [i["reason"] for i in items] == [
        "message_template_status_update: template id or time missing"
    ]
    assert client.get("/v1/templates", headers=auth()).json["total"] == 1


def test_other_account_events_are_not_kept() -> None:
    doc = change("account_update", {"event": "ACCOUNT_VIOLATION"}, T0)
    facts = account_facts(doc)
    assert not facts


def test_template_ids_as_strings_and_numbers_are_the_same() -> None:
    as_number = account_facts(status_update("APPROVED", "UTILITY", T0)).templates[0]
    doc = json.loads(json.dumps(status_update("APPROVED", "UTILITY", T0)))
    doc["entry"][0]["changes"][0]["value"]["message_template_id"] = str(TEMPLATE)
    assert account_facts(doc).templates[0] == as_number


def test_a_field_that_is_not_a_string_is_ignored_not_a_crash() -> None:
    """Found by the fuzz test: an unhashable `field` must not stop the drain."""
    from processor.core.account_events import wanted

    doc = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": ["messages"]}, {"field": {"a": 1}}, {"field": None}]}]}  # fmt: skip
    assert not wanted(doc)
    assert not account_facts(doc)


def test_tier_webhooks_expire_like_records(client: Any, ctx: Context) -> None:
    deliver(client, ctx, tier_update("750001:2000000", T0))
    ttl = ctx.redis.ttl(ctx.keys.tier_updates(p.WABA))
    assert 0 < ttl <= ctx.settings.records_retention_seconds

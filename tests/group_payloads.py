"""Meta-shaped group webhooks (rule book 7.4), with real values in place of the placeholders.

The shapes follow Meta's pages: a group-level ``sent`` (no participant) and ``failed`` (with
``errors``); an aggregated ``delivered``/``read`` POST with one status per participant, all
with the same wamid; a group inbound message carrying ``group_id``; the BSUID fields of
2026-03; and the defects of Meta's own samples (``participant_recipient_id``, ``pricing``
nested in ``conversation``).
"""

from __future__ import annotations

from typing import Any

from tests import payloads as p

GROUP = "Y2FwaV9ncm91cDox"  # base64 of "capi_group:1", Meta's style of group id


def group_sent(
    wamid: str, t: int, group: str = GROUP, category: str | None = None, ptype: str | None = None
) -> dict[str, Any]:
    """One status for the whole group, no participant (GM "Group message sent example")."""
    item: dict[str, Any] = {
        "id": wamid,
        "recipient_id": group,
        "recipient_type": "group",
        "status": "sent",
        "timestamp": str(t),
    }
    if category is not None or ptype is not None:
        item["pricing"] = _pricing(category, ptype)
    return item


def group_failed(wamid: str, t: int, group: str = GROUP) -> dict[str, Any]:
    """A failed group send: group level, no participant, with ``errors[]``."""
    return {
        "id": wamid,
        "recipient_id": group,
        "recipient_type": "group",
        "status": "failed",
        "timestamp": str(t),
        "errors": [{"code": 131000, "title": "Something went wrong"}],
    }


def participant_status(
    wamid: str,
    state: str,
    t: int,
    participant: str | None,
    group: str = GROUP,
    category: str | None = None,
    ptype: str | None = None,
    bsuid: str | None = None,
    misspelt: bool = False,
    nested: bool = False,
) -> dict[str, Any]:
    """One participant's status (SR field set). ``bsuid``: the participant's business-scoped
    id as well (or alone, with ``participant`` None); ``misspelt``: Meta's sample spelling
    ``participant_recipient_id``; ``nested``: ``pricing`` inside ``conversation`` (GW sample)."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(t),
        "recipient_id": group,
        "recipient_type": "group",
    }
    if participant is not None:
        item["participant_recipient_id" if misspelt else "recipient_participant_id"] = participant
    if bsuid is not None:
        item["recipient_participant_user_id"] = bsuid
        item["recipient_participant_parent_user_id"] = bsuid.split(".")[0] + ".PARENT1"
    if category is not None or ptype is not None:
        pricing = _pricing(category, ptype)
        if nested:
            item["conversation"] = {"id": f"conv-{wamid}", "pricing": pricing}
        else:
            item["pricing"] = pricing
    return item


def aggregated(statuses: list[dict[str, Any]], phone: str = p.PHONE) -> dict[str, Any]:
    """The ``messages`` change of an aggregated group status webhook: the statuses of one
    message and one status type, with one ``contacts[]`` entry per status (BS)."""
    change = p.change(statuses=statuses, phone=phone)
    contacts = []
    for item in statuses:
        who = item.get("recipient_participant_id") or item.get("participant_recipient_id")
        contact: dict[str, Any] = {"profile": {"name": "Member"}}
        if who:
            contact["wa_id"] = who
        if item.get("recipient_participant_user_id"):
            contact["user_id"] = item["recipient_participant_user_id"]
        contacts.append(contact)
    if any(s["status"] != "failed" for s in statuses):  # absent on failed (BS)
        change["value"]["contacts"] = contacts
    return change


def group_inbound(
    wamid: str, t: int, writer: str, group: str = GROUP, phone: str = p.PHONE
) -> dict[str, Any]:
    """A member's message in the group (GM, GR): ``from`` is the member, ``group_id`` the group."""
    message = {
        "from": writer,
        "group_id": group,
        "id": wamid,
        "timestamp": str(t),
        "text": {"body": "hello group"},
        "type": "text",
    }
    return p.change(messages=[message], phone=phone)


def _pricing(category: str | None, ptype: str | None) -> dict[str, Any]:
    pricing: dict[str, Any] = {"billable": ptype == "regular", "pricing_model": "PMP"}
    if category is not None:
        pricing["category"] = category
    if ptype is not None:
        pricing["type"] = ptype
    return pricing

"""What Meta tells besides billing events: display numbers, tier webhooks, the template registry.

- ``{p}:display_numbers``: ``phone_number_id`` -> display number, learnt from every ``messages``
  webhook's ``metadata`` (Meta's analytics name numbers by display number).
- ``{p}:tiers:{waba_id}``: one entry per tier occurrence (month, category, region, tier); Meta
  may send one several times, the earliest ``tier_update_time`` is kept.
- ``{p}:templates``: template id -> ``{template_id, waba_id, name, language, category, status,
  updated_at, history: [...]}``. History entries are kept in time order and once each, so that
  redelivered or out-of-order webhooks change nothing. A change between categories is recorded
  as an alert (``template_recategorised``) through :class:`processor.store.alerts.Alerts`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import redis

from processor.core.account_events import AccountFacts, TemplateEvent, TierUpdate
from processor.store import codec
from processor.store.alerts import Alerts
from processor.store.keys import Keys

log = logging.getLogger(__name__)
RECATEGORISED = "template_recategorised"


class MetaState:
    def __init__(
        self, client: redis.Redis, keys: Keys, retention_seconds: int = 400 * 86_400
    ) -> None:
        self.redis, self.keys, self.retention = client, keys, retention_seconds

    # -- writing -------------------------------------------------------------------------------

    def apply(self, facts: AccountFacts, pipe: Any | None = None) -> int:
        """Store the facts of a batch; display numbers go in ``pipe`` when one is given (the
        drain's single round trip). Returns how many alerts were recorded."""
        if facts.display_numbers:
            target: Any = pipe if pipe is not None else self.redis
            target.hset(self.keys.display_numbers, mapping=facts.display_numbers)
        for update in facts.tier_updates:
            self.add_tier_update(update)
        return sum(self.add_template_event(event) for event in facts.templates)

    def add_tier_update(self, update: TierUpdate) -> None:
        key = self.keys.tier_updates(update.waba_id)
        doc = dataclasses.asdict(update)

        def write(tx: Any) -> None:
            old = tx.hget(key, update.dedup)
            if old and json.loads(old)["tier_update_time"] <= update.tier_update_time:
                return
            tx.multi()
            tx.hset(key, update.dedup, json.dumps(doc, sort_keys=True))
            tx.expire(key, self.retention)  # a WABA's tier history: kept like its records

        self.redis.transaction(write, key)

    def add_template_event(self, event: TemplateEvent) -> int:
        """Add one fact to the registry; 1 if it recorded a recategorisation alert."""
        key = self.keys.templates
        changes: list[tuple[str, str]] = []

        def write(tx: Any) -> None:
            raw = tx.hget(key, event.template_id)
            entry = json.loads(raw) if raw else _empty(event)
            changes.clear()
            changes.extend(_merge(entry, event))
            tx.multi()
            tx.hset(key, event.template_id, json.dumps(entry, sort_keys=True))

        self.redis.transaction(write, key)
        recorded = 0
        for old, new in changes:
            alert = Alerts(self.redis, self.keys).record(
                kind=RECATEGORISED,
                dedup=f"{event.template_id}|{old}|{new}|{event.at}",
                data={
                    "template_id": event.template_id,
                    "name": event.name,
                    "language": event.language,
                    "previous_category": old,
                    "new_category": new,
                    "at": event.at,
                    "source": event.source,
                },
                waba_id=event.waba_id,
            )
            if alert is not None:
                recorded += 1
                log.info("template %s recategorised %s -> %s", event.template_id, old, new)
        return recorded

    # -- reading -------------------------------------------------------------------------------

    def display_numbers(self) -> dict[str, str]:
        raw = codec.mapping(self.redis.hgetall(self.keys.display_numbers))
        return {codec.text(k): codec.text(v) for k, v in raw.items()}

    def tier_updates(self, waba_id: str, month: str | None = None) -> list[dict[str, Any]]:
        items = [json.loads(v) for v in self.redis.hvals(self.keys.tier_updates(waba_id))]
        if month is not None:
            items = [i for i in items if i["effective_month"] == month]
        return sorted(items, key=lambda i: (i["tier_update_time"], i["tier"]))

    def templates(self, waba_id: str | None = None) -> list[dict[str, Any]]:
        items = [json.loads(v) for v in self.redis.hvals(self.keys.templates)]
        if waba_id is not None:
            items = [i for i in items if i["waba_id"] == waba_id]
        return sorted(items, key=lambda i: (i["waba_id"], i["name"] or "", i["template_id"]))


def _empty(event: TemplateEvent) -> dict[str, Any]:
    return {
        "template_id": event.template_id,
        "waba_id": event.waba_id,
        "name": None,
        "language": None,
        "category": None,
        "status": None,
        "updated_at": None,
        "history": [],
    }


def _history_item(event: TemplateEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "source": event.source,
        "event": event.event,
        "category": event.category,
        "previous_category": event.previous_category,
        "correct_category": event.correct_category,
        "reason": event.reason,
    }


def _merge(entry: dict[str, Any], event: TemplateEvent) -> list[tuple[str, str]]:
    """Add ``event`` to ``entry`` (once), recompute its current fields from the history, and
    return the category changes the new item shows: ``[(old, new)]``."""
    item = _history_item(event)
    history: list[dict[str, Any]] = entry["history"]
    if item in history:
        return []
    history.append(item)
    history.sort(key=lambda h: (h["at"], h["source"], h["event"] or "", h["category"] or ""))
    entry["name"] = event.name or entry["name"]
    entry["language"] = event.language or entry["language"]
    changes: list[tuple[str, str]] = []
    category: str | None = None
    status: str | None = None
    for h in history:
        if h["event"] == "CATEGORY_CHANGE_SCHEDULED":
            continue  # the category changes only when Meta says it did
        old = h["previous_category"] or category
        new = h["category"]
        if new and old and new != old and h is item:
            changes.append((old, new))
        category = new or category
        if h["source"] == "message_template_status_update" and h["event"]:
            status = h["event"]
    entry["category"], entry["status"] = category, status
    entry["updated_at"] = history[-1]["at"]
    return changes

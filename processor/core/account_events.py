"""The webhook fields beside ``messages`` that reconciliation needs, as plain facts.

- every ``messages`` change's ``metadata``: the display number of a ``phone_number_id``
  (Meta's analytics name numbers by display number);
- ``account_update`` with ``event: VOLUME_BASED_PRICING_TIER_UPDATE``: a tier Meta says the
  account reached (``volume_tier_info``);
- ``message_template_status_update`` and ``template_category_update``: the template registry.

Pure and forgiving: a malformed change becomes a :class:`~processor.core.events.Rejected` and the
others still count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from processor.core.events import Rejected

MESSAGES = "messages"
ACCOUNT_UPDATE = "account_update"
TEMPLATE_STATUS = "message_template_status_update"
TEMPLATE_CATEGORY = "template_category_update"
FIELDS = frozenset({MESSAGES, ACCOUNT_UPDATE, TEMPLATE_STATUS, TEMPLATE_CATEGORY})
KEPT = FIELDS | {"calls"}  # bodies stored and archived (calls: processor.core.call_parse)
TIER_UPDATE = "VOLUME_BASED_PRICING_TIER_UPDATE"
_ID = re.compile(r"[0-9]{1,32}")
_WORD = re.compile(r"[A-Za-z0-9_:.+ -]{1,64}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class TierUpdate:
    waba_id: str
    effective_month: str
    pricing_category: str  # Meta's upper case, e.g. UTILITY
    region: str
    tier: str
    tier_update_time: int

    @property
    def dedup(self) -> str:
        return "|".join((self.effective_month, self.pricing_category, self.region, self.tier))


@dataclass(frozen=True)
class TemplateEvent:
    """One template fact: a status event, a completed or an impending category change."""

    waba_id: str
    template_id: str
    at: int  # entry.time (or the change's own timestamp), Unix seconds
    source: str  # the webhook field
    name: str | None = None
    language: str | None = None
    event: str | None = None  # status event (APPROVED, REJECTED...) or CATEGORY_CHANGED...
    category: str | None = None  # the category from this fact on (lower case)
    previous_category: str | None = None
    correct_category: str | None = None  # impending: the category it will get
    reason: str | None = None


@dataclass
class AccountFacts:
    display_numbers: dict[str, str] = field(default_factory=dict)
    tier_updates: list[TierUpdate] = field(default_factory=list)
    templates: list[TemplateEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.display_numbers or self.tier_updates or self.templates or self.rejected)


def wanted(doc: dict[str, Any]) -> bool:
    """Whether any change of the body has a field the processor keeps."""
    entries = doc.get("entry")
    if doc.get("object") != "whatsapp_business_account" or not isinstance(entries, list):
        return False
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if isinstance(changes, list) and any(_field(c) in KEPT for c in changes):
            return True
    return False


def account_facts(doc: dict[str, Any]) -> AccountFacts:
    """Display numbers, tier updates and template events of one webhook body."""
    facts = AccountFacts()
    entries = doc.get("entry")
    if doc.get("object") != "whatsapp_business_account" or not isinstance(entries, list):
        return facts
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            continue  # the messages parser reports malformed entries
        waba_id = entry.get("id")
        at = _int(entry.get("time"))
        for j, change in enumerate(entry["changes"]):
            if _field(change) not in FIELDS:
                continue
            value = change.get("value")
            path = f"entry[{i}].changes[{j}]"
            if change["field"] == MESSAGES:
                _metadata(value, facts)
                continue
            if not isinstance(waba_id, str) or not _ID.fullmatch(waba_id):
                facts.rejected.append(Rejected("entry.id is not a WABA id", path))
            elif not isinstance(value, dict):
                facts.rejected.append(Rejected("value is not an object", path))
            else:
                _change(change["field"], waba_id, at, value, path, facts)
    return facts


def _field(change: Any) -> str | None:
    """A change's field name (None unless a string: a hostile body may put anything there)."""
    name = change.get("field") if isinstance(change, dict) else None
    return name if isinstance(name, str) else None


def _metadata(value: Any, facts: AccountFacts) -> None:
    meta = value.get("metadata") if isinstance(value, dict) else None
    if not isinstance(meta, dict):
        return
    phone_id, display = meta.get("phone_number_id"), meta.get("display_phone_number")
    if isinstance(phone_id, str) and _ID.fullmatch(phone_id) and isinstance(display, str):
        digits = re.sub(r"[^0-9]", "", display)
        if 4 <= len(digits) <= 20:
            facts.display_numbers[phone_id] = digits


def _change(
    name: str, waba_id: str, at: int | None, value: dict[str, Any], path: str, facts: AccountFacts
) -> None:
    if name == ACCOUNT_UPDATE:
        if value.get("event") != TIER_UPDATE:
            return  # other account events are not kept
        update = _tier_update(waba_id, value.get("volume_tier_info"))
        if update is None:
            facts.rejected.append(Rejected("volume_tier_info missing or malformed", path))
        else:
            facts.tier_updates.append(update)
        return
    event = _template_event(name, waba_id, at, value)
    if event is None:
        facts.rejected.append(Rejected(f"{name}: template id or time missing", path))
    else:
        facts.templates.append(event)


def _tier_update(waba_id: str, info: Any) -> TierUpdate | None:
    if not isinstance(info, dict):
        return None
    month, category = info.get("effective_month"), _word(info.get("pricing_category"))
    region, tier = _word(info.get("region")), _word(info.get("tier"))
    when = _int(info.get("tier_update_time"))
    if not (isinstance(month, str) and _MONTH.fullmatch(month)) or None in (category, tier, when):
        return None
    assert category is not None and tier is not None and when is not None
    return TierUpdate(waba_id, month, category.upper(), region or "", tier.upper(), when)


def _template_event(
    name: str, waba_id: str, at: int | None, value: dict[str, Any]
) -> TemplateEvent | None:
    template_id = value.get("message_template_id")
    if isinstance(template_id, int) and not isinstance(template_id, bool):
        template_id = str(template_id)
    if not isinstance(template_id, str) or not _ID.fullmatch(template_id):
        return None
    when = at if at is not None else _int(value.get("category_update_timestamp"))
    if when is None:
        return None
    common = TemplateEvent(
        waba_id=waba_id,
        template_id=template_id,
        at=when,
        source=name,
        name=_text(value.get("message_template_name")),
        language=_word(value.get("message_template_language")),
    )
    if name == TEMPLATE_STATUS:
        return replace(
            common,
            event=_upper(value.get("event")),
            category=_category(value.get("message_template_category")),
            reason=_word(value.get("reason")),
        )
    correct = _category(value.get("correct_category"))
    if correct is not None:  # impending: new_category is still the current one
        return replace(
            common,
            event="CATEGORY_CHANGE_SCHEDULED",
            category=_category(value.get("new_category")),
            correct_category=correct,
        )
    return replace(
        common,
        event="CATEGORY_CHANGED",
        category=_category(value.get("new_category")),
        previous_category=_category(value.get("previous_category")),
    )


def _category(raw: Any) -> str | None:
    word = _word(raw)
    return None if word is None else word.strip().lower().replace("-", "_")


def _upper(raw: Any) -> str | None:
    word = _word(raw)
    return None if word is None else word.upper()


def _word(raw: Any) -> str | None:
    return raw.strip() if isinstance(raw, str) and _WORD.fullmatch(raw.strip()) else None


def _text(raw: Any) -> str | None:
    return raw[:512] if isinstance(raw, str) and raw.isprintable() and raw else None


def _int(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 10**11:
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 11:
        return int(raw)
    return None

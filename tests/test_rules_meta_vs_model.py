"""Rule book section 3: Meta's classification wins where present; the model fills the gaps
(``source: derived``) and marks disagreements with a ``discrepancy`` code."""

from __future__ import annotations

import json

import pytest

from processor.core.events import Conversation, Pricing, Status
from processor.core.model import (
    CATEGORY_MISMATCH,
    DERIVED,
    META,
    MISSING_FEP,
    UNEXPECTED_CHARGE,
    UNEXPECTED_FEP,
    UNEXPECTED_FREE,
    UNEXPECTED_JOIN,
    UNEXPECTED_NEW,
)
from processor.core.parse import parse_body
from processor.core.policies import (
    AUTH_INTL,
    BUSINESS_INITIATED,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    MARKETING,
    REFERRAL,
    SERVICE,
    USER_INITIATED,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
)
from tests import payloads
from tests.rules_helpers import (
    DAY,
    ERA,
    PAIR,
    H,
    delivered,
    inbound,
    only,
    read,
    reply,
    run,
    sent,
    units,
)

CBP = ERA["cbp-2023"]
PMP = ERA["pmp-2025-07"]

# -- conversation.id ---------------------------------------------------------------------------


def test_a_new_meta_conversation_id_is_a_new_conversation_even_where_one_is_open() -> None:
    """conversation.id identifies the CBP conversation: a new id = a new conversation."""
    events = [
        delivered("w1", CBP, UTILITY, conv_id="c1"),
        delivered("w2", CBP + 4 * H, UTILITY, conv_id="c2"),  # the model: utility is open
    ]
    found = units(events)
    assert [(u.wamid, u.meta_conversation_id, u.discrepancy) for u in found] == [
        ("w1", "c1", None),
        ("w2", "c2", UNEXPECTED_NEW),
    ]


def test_a_known_meta_conversation_id_joins_even_where_the_model_would_open() -> None:
    """The same id joins the conversation already billed; the model's "expired" is noted."""
    events = [
        delivered("w1", CBP, UTILITY, conv_id="c1"),
        delivered("w2", CBP + 30 * H, UTILITY, conv_id="c1"),
    ]
    unit = only(events)
    assert (unit.wamid, unit.discrepancy) == ("w1", UNEXPECTED_JOIN)


def test_metas_expiration_timestamp_bounds_the_conversation() -> None:
    """Meta's conversation (id and expiry from `sent`) wins over the model's 24h from delivery."""
    events = [
        sent("w1", CBP, UTILITY, conv_id="c1", expires=CBP + 24 * H),
        delivered("w1", CBP + 5, UTILITY, conv_id="c1"),
    ]
    unit = only(events)
    assert (unit.charge_time, unit.expires_at, unit.source) == (CBP + 5, CBP + 24 * H, META)


def test_meta_conversation_ids_give_the_same_record_as_meta_has() -> None:
    """One record per Meta conversation: its record id follows Meta's id, not the wamid."""
    a = only([delivered("w1", CBP, UTILITY, conv_id="c1")])
    b = only([delivered("other", CBP + H, UTILITY, conv_id="c1")])
    assert a.record_id == b.record_id


# -- pricing.category --------------------------------------------------------------------------


def test_metas_category_is_the_conversations_category() -> None:
    """pricing.category is the category."""
    unit = only([delivered("w1", CBP, MARKETING, conv_id="c1")])
    assert unit.category == MARKETING


def test_metas_initiator_wins_under_cbp_2022_and_the_disagreement_is_marked() -> None:
    """Where both exist and disagree, Meta's answer is kept with a discrepancy reason."""
    t0 = ERA["cbp-2022"]
    events = [inbound(t0), delivered("w1", t0 + H, BUSINESS_INITIATED, conv_id="c1")]
    unit = only(events)
    assert (unit.category, unit.source, unit.discrepancy) == (
        BUSINESS_INITIATED,
        META,
        CATEGORY_MISMATCH,
    )


@pytest.mark.parametrize(
    "spelling",
    [
        "authentication-international",
        "authentication_international",
        "AUTHENTICATION-INTERNATIONAL",
    ],
)
def test_both_spellings_of_authentication_international_are_one_category(spelling: str) -> None:
    """authentication-international and authentication_international are the same category."""
    unit = only([delivered("w1", PMP, spelling, ptype="regular")])
    assert (unit.category, unit.bucket) == (AUTH_INTL, VOLUME_TIER)


@pytest.mark.parametrize(
    "spelling", ["authentication-international", "authentication_international"]
)
def test_both_spellings_parse_to_one_category(spelling: str) -> None:
    """The same holds for the category parsed from Meta's webhook body."""
    doc = payloads.body(
        payloads.change(statuses=[payloads.status("w1", "delivered", PMP, category=spelling)])
    )
    [event] = parse_body(json.dumps(doc).encode()).events
    assert isinstance(event, Status)
    assert only([event]).category == AUTH_INTL


def test_customer_initiated_is_the_user_initiated_category() -> None:
    """Meta's prose says customer_initiated where payloads say user_initiated: one category."""
    t0 = ERA["cbp-2022"]
    unit = only([inbound(t0), delivered("w1", t0 + H, "customer_initiated", conv_id="c1")])
    assert (unit.category, unit.discrepancy) == (USER_INITIATED, None)


# -- pricing.type ------------------------------------------------------------------------------

TYPES = [
    # category, user wrote recently?, Meta's pricing.type, free_reason kept, discrepancy
    (MARKETING, False, "regular", None, None),
    (MARKETING, True, FREE_CUSTOMER_SERVICE, FREE_CUSTOMER_SERVICE, UNEXPECTED_FREE),
    (UTILITY, True, FREE_CUSTOMER_SERVICE, FREE_CUSTOMER_SERVICE, None),
    (UTILITY, True, "regular", None, UNEXPECTED_CHARGE),
    (UTILITY, False, FREE_CUSTOMER_SERVICE, FREE_CUSTOMER_SERVICE, UNEXPECTED_FREE),
    (UTILITY, False, "regular", None, None),
    (SERVICE, True, FREE_CUSTOMER_SERVICE, FREE_CUSTOMER_SERVICE, None),
]


@pytest.mark.parametrize(
    ("category", "in_csw", "ptype", "free_reason", "discrepancy"),
    TYPES,
    ids=[f"{c}-{'in' if w else 'outside'}-csw-meta-{t}" for c, w, t, _, _ in TYPES],
)
def test_metas_pricing_type_says_whether_a_pmp_message_was_free(
    category: str, in_csw: bool, ptype: str, free_reason: str | None, discrepancy: str | None
) -> None:
    """pricing.type says whether a PMP message was free and why; a disagreement with the
    model is kept as Meta said and marked."""
    wrote = PMP if in_csw else PMP - 2 * DAY
    events = [inbound(wrote), delivered("w1", PMP + H, category, ptype=ptype, model="PMP")]
    unit = only(events)
    assert (unit.free_reason, unit.source, unit.discrepancy) == (free_reason, META, discrepancy)


# -- entry points ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("era", "meta"),
    [
        pytest.param("cbp-2023", {"category": REFERRAL, "conv_id": "fep-1"}, id="cbp-category"),
        pytest.param("pmp-2025-07", {"ptype": FREE_ENTRY_POINT}, id="pmp-type"),
        pytest.param("pmp-2025-07", {"category": REFERRAL}, id="pmp-category"),
    ],
)
def test_meta_saying_entry_point_wins_where_the_model_saw_none(
    era: str, meta: dict[str, str]
) -> None:
    """referral_conversion (or pricing.type free_entry_point) marks FEP; without a referral
    inbound the model saw none: Meta's answer is kept and marked."""
    t0 = ERA[era]
    unit = only([inbound(t0), delivered("w1", t0 + H, **meta)])
    assert (unit.category, unit.free_reason, unit.discrepancy) == (
        REFERRAL,
        FREE_ENTRY_POINT,
        UNEXPECTED_FEP,
    )


@pytest.mark.parametrize(
    ("era", "meta", "category"),
    [
        pytest.param("cbp-2023", {"conv_id": "c1"}, SERVICE, id="cbp-service-conversation"),
        pytest.param("pmp-2025-07", {"ptype": "regular"}, MARKETING, id="pmp-regular"),
    ],
)
def test_meta_denying_an_entry_point_the_model_saw_wins_and_is_marked(
    era: str, meta: dict[str, str], category: str
) -> None:
    """Meta's answer wins: a message Meta did not put in an FEP is judged as Meta says,
    marked model_free_entry_point_meta_had_none."""
    t0 = ERA[era]
    events = [inbound(t0, referral=True), delivered("w1", t0 + H, category, **meta)]
    unit = only(events)
    assert (unit.category, unit.discrepancy) == (category, MISSING_FEP)


# -- source ------------------------------------------------------------------------------------

SOURCES = [
    # era, Meta's fields on the delivered status, source
    ("cbp-2023", {"category": UTILITY, "conv_id": "c1"}, META),
    ("cbp-2023", {"category": UTILITY}, DERIVED),
    ("cbp-2022", {}, DERIVED),
    ("pmp-2025-07", {"category": UTILITY, "ptype": "regular"}, META),
    ("pmp-2025-07", {"category": UTILITY}, DERIVED),
]


@pytest.mark.parametrize(
    ("era", "meta", "source"),
    SOURCES,
    ids=[f"{e}-{'+'.join(m) or 'nothing'}-{s}" for e, m, s in SOURCES],
)
def test_source_is_meta_where_metas_answer_is_present_else_derived(
    era: str, meta: dict[str, str], source: str
) -> None:
    """Where Meta's fields are missing the model decides (source derived): under CBP Meta's
    answer is its conversation id, under PMP its pricing.type."""
    unit = only([delivered("w1", ERA[era], **meta)])
    assert unit.source == source


# -- what cannot be derived waits --------------------------------------------------------------


@pytest.mark.parametrize("era", ["cbp-2023", "cbp-2024-11", "pmp-2025-07", "pmp-2026-10"])
def test_a_delivered_message_of_unknown_category_is_pending_not_guessed(era: str) -> None:
    """The category of a template cannot be derived: without pricing the message is listed as
    pending, and opens nothing."""
    t0 = ERA[era]
    evaluation = run([delivered("w1", t0), read("w1", t0 + 60)])
    assert evaluation.units == ()
    assert [(p.wamid, p.charge_time) for p in evaluation.pending] == [("w1", t0)]


@pytest.mark.parametrize("era", ["cbp-2023", "pmp-2025-07"])
def test_a_pending_message_becomes_a_unit_once_a_status_with_pricing_arrives(era: str) -> None:
    """A pending message is judged as soon as a status with pricing arrives; later messages
    are judged again with it in place."""
    t0 = ERA[era]
    first = [delivered("w1", t0), delivered("w2", t0 + H, MARKETING)]
    before = run(first)
    assert ([p.wamid for p in before.pending], [u.wamid for u in before.units]) == (["w1"], ["w2"])
    after = run([*first, read("w1", t0 + 2 * H, MARKETING)])
    assert after.pending == ()
    expected = ["w1"] if era == "cbp-2023" else ["w1", "w2"]  # CBP: w2 joins w1's conversation
    assert [u.wamid for u in after.units] == expected


# -- allowances are the processor's own --------------------------------------------------------


@pytest.mark.parametrize("billable", [True, False, None])
def test_metas_billable_flag_does_not_decide_the_free_tier(billable: bool | None) -> None:
    """Under CBP billable stays true for conversations the monthly allowance covers: the
    allowance is the processor's own work."""
    pricing = Pricing(billable=billable, model="CBP", category=SERVICE)
    status = Status(PAIR, "w1", "delivered", CBP + H, Conversation("c1"), pricing)
    unit = only([inbound(CBP), status])
    assert (unit.free_reason, unit.bucket) == (None, WABA_ALLOWANCE)


def test_a_reply_in_the_csw_needs_no_meta_fields_to_be_service() -> None:
    """Meta's category service on a reply is the non-template message of rule 2.2."""
    unit = only([inbound(CBP), reply("w1", CBP + H)])
    assert (unit.category, unit.source) == (SERVICE, DERIVED)

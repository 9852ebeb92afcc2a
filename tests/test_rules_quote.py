"""``quote``: would delivering one more message open a charge unit, which, why, into which
bucket -- answered by the model's own rules, without changing anything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import Event, Inbound
from processor.core.model import evaluate
from processor.core.policies import (
    AUTHENTICATION,
    BUSINESS_INITIATED,
    FREE_CUSTOMER_SERVICE,
    FREE_ENTRY_POINT,
    MARKETING,
    PHONE_ALLOWANCE,
    REFERRAL,
    SERVICE,
    USER_INITIATED,
    UTILITY,
    VOLUME_TIER,
    WABA_ALLOWANCE,
)
from processor.core.quote import (
    CSW_CLOSED,
    CSW_OPEN,
    FEP_OPEN,
    FEP_OPENS,
    NEW_CONVERSATION,
    NOT_PRICED,
    OPEN_CONVERSATION,
    PER_MESSAGE,
    UTILITY_FREE_IN_CSW,
    Quote,
    quote,
)
from tests.rules_helpers import (
    BOOK,
    DAY,
    ERA,
    PAIR,
    UTC,
    H,
    delivered,
    history_of,
    inbound,
    reply,
    ts,
)
from tests.test_rules_properties import histories

CBP = ERA["cbp-2023"]
PMP_STARTS = ts("2025-07-01T00:00")  # per-message pricing (UTC WABA)
PMP = ERA["pmp-2025-07"]


def ask(events: Sequence[Event], category: str, at: int, template: bool = True) -> Quote:
    return quote(PAIR, history_of(events), UTC, BOOK, category, template, at)


def unit_id(events: Sequence[Event], wamid: str) -> str:
    [unit] = [u for u in evaluate(PAIR, history_of(events), UTC, BOOK).units if u.wamid == wamid]
    return unit.record_id


# -- CBP ---------------------------------------------------------------------------------------


def test_a_template_inside_an_open_conversation_of_its_category_opens_nothing() -> None:
    """cbp-2023: if a C-conversation is open at t, nothing opens."""
    events = [delivered("w1", CBP, MARKETING)]
    answer = ask(events, MARKETING, CBP + 2 * H)
    assert (answer.allowed, answer.opens, answer.reason) == (True, False, OPEN_CONVERSATION)
    assert answer.joins == unit_id(events, "w1")
    assert answer.free_by_rule


def test_a_template_of_another_category_opens_a_new_conversation() -> None:
    """cbp-2023: otherwise a new C-conversation opens for [t, t + 24h)."""
    answer = ask([delivered("w1", CBP, MARKETING)], UTILITY, CBP + 2 * H)
    assert (answer.opens, answer.reason, answer.joins) == (True, NEW_CONVERSATION, None)
    assert answer.unit is not None
    assert (answer.unit.kind, answer.unit.category, answer.unit.policy) == (
        "conversation",
        UTILITY,
        "cbp-2023",
    )
    assert (answer.unit.expires_at, answer.bucket_scope) == (CBP + 26 * H, None)


@pytest.mark.parametrize(
    ("events", "opens", "reason"),
    [
        pytest.param([inbound(CBP), delivered("w1", CBP, UTILITY)], False, OPEN_CONVERSATION,
                     id="any-open-conversation-covers"),
        pytest.param([inbound(CBP)], True, NEW_CONVERSATION, id="nothing-open-service-opens"),
    ],
)  # fmt: skip
def test_a_free_form_reply_joins_any_open_conversation_or_opens_service(
    events: list[Event], opens: bool, reason: str
) -> None:
    """cbp-2023: a non-template message opens service only when no conversation is open."""
    answer = ask(events, SERVICE, CBP + H, template=False)
    assert (answer.allowed, answer.opens, answer.reason) == (True, opens, reason)


def test_a_new_service_conversation_names_its_allowance_bucket() -> None:
    """cbp-2023: first 1,000 service conversations per WABA per month are free: the quote
    names the bucket, month and limit, so the counters can tell whether any is left."""
    answer = ask([inbound(CBP)], SERVICE, CBP + H, template=False)
    assert answer.unit is not None
    assert (answer.unit.category, answer.unit.bucket) == (SERVICE, WABA_ALLOWANCE)
    assert answer.bucket_scope == (WABA_ALLOWANCE, PAIR.waba_id, "2023-11")
    assert answer.allowance_limit == 1_000
    assert not answer.free_by_rule


@pytest.mark.parametrize(
    ("user_wrote", "kind"),
    [(True, USER_INITIATED), (False, BUSINESS_INITIATED)],
    ids=["csw-open", "csw-closed"],
)
def test_cbp_2022_quotes_the_initiator_of_the_conversation(user_wrote: bool, kind: str) -> None:
    """cbp-2022: user_initiated if the CSW is open at delivery, else business_initiated."""
    t0 = ERA["cbp-2022"]
    answer = ask([inbound(t0)] if user_wrote else [], MARKETING, t0 + H)
    assert answer.unit is not None
    assert (answer.reason, answer.unit.category, answer.unit.discrepancy) == (
        NEW_CONVERSATION,
        kind,
        None,
    )


# -- the customer service window -----------------------------------------------------------------


@pytest.mark.parametrize("era", list(ERA))
@pytest.mark.parametrize("user_wrote", [None, -25 * H, -24 * H], ids=str)
def test_a_free_form_message_needs_an_open_csw(era: str, user_wrote: int | None) -> None:
    """A non-template message needs an open CSW: not allowed when it is closed (also at its
    exact end)."""
    at = ERA[era] + 2 * DAY
    events = [] if user_wrote is None else [inbound(at + user_wrote)]
    answer = ask(events, SERVICE, at, template=False)
    assert (answer.allowed, answer.reason, answer.opens) == (False, CSW_CLOSED, False)


def test_a_free_form_message_inside_an_fep_still_needs_the_csw() -> None:
    """Non-template messages still need an open CSW inside an FEP window."""
    events = [inbound(PMP, referral=True), delivered("w1", PMP + H, MARKETING)]
    assert ask(events, SERVICE, PMP + 30 * H, template=False).reason == CSW_CLOSED
    assert ask(events, MARKETING, PMP + 30 * H).reason == FEP_OPEN


# -- PMP -----------------------------------------------------------------------------------------

PMP_QUOTES = [
    # era, user wrote recently?, category, template?, reason, free_reason, bucket
    ("pmp-2025-07", True, UTILITY, True, UTILITY_FREE_IN_CSW, FREE_CUSTOMER_SERVICE, None),
    ("pmp-2025-07", False, UTILITY, True, PER_MESSAGE, None, VOLUME_TIER),
    ("pmp-2025-07", True, SERVICE, False, CSW_OPEN, FREE_CUSTOMER_SERVICE, None),
    ("pmp-2025-07", True, MARKETING, True, PER_MESSAGE, None, None),
    ("pmp-2025-07", False, AUTHENTICATION, True, PER_MESSAGE, None, VOLUME_TIER),
    ("pmp-2026-10", True, UTILITY, True, PER_MESSAGE, None, VOLUME_TIER),
    ("pmp-2026-10", True, SERVICE, False, PER_MESSAGE, None, PHONE_ALLOWANCE),
]


@pytest.mark.parametrize(
    ("era", "in_csw", "category", "template", "reason", "free_reason", "bucket"),
    PMP_QUOTES,
    ids=[f"{e}-{c}-{'in' if w else 'outside'}-csw" for e, w, c, *_ in PMP_QUOTES],
)
def test_pmp_quotes_follow_the_per_message_rules(
    era: str,
    in_csw: bool,
    category: str,
    template: bool,
    reason: str,
    free_reason: str | None,
    bucket: str | None,
) -> None:
    """Under PMP every delivered message is a unit: utility free in the CSW (pmp-2025-07),
    service free (pmp-2025-07) or in the phone allowance (pmp-2026-10), the rest charged,
    utility and authentication in volume tiers."""
    t0 = ERA[era]
    wrote = t0 if in_csw else t0 - 2 * DAY
    answer = ask([inbound(wrote)], category, t0 + H, template)
    assert answer.unit is not None
    assert (answer.opens, answer.reason, answer.unit.kind) == (True, reason, "message")
    assert (answer.unit.free_reason, answer.unit.bucket) == (free_reason, bucket)


def test_pmp_2026_service_quote_names_the_phone_allowance() -> None:
    """pmp-2026-10: 1,000 free service messages per business number per month."""
    t0 = ERA["pmp-2026-10"]
    answer = ask([inbound(t0)], SERVICE, t0 + H, template=False)
    assert answer.bucket_scope == (PHONE_ALLOWANCE, PAIR.phone_number_id, "2026-11")
    assert answer.allowance_limit == 1_000


def test_a_tiered_quote_names_category_and_month_of_its_tier() -> None:
    """Tiers: per portfolio x market x category x month (portfolio and market: storage)."""
    answer = ask([], UTILITY, PMP)
    assert (answer.bucket_scope, answer.allowance_limit) == (
        (VOLUME_TIER, UTILITY, "2025-09"),
        None,
    )


# -- free entry points -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("era", "kind"), [("cbp-2023", "conversation"), ("pmp-2025-07", "message")]
)
def test_the_first_reply_after_an_entry_point_would_open_the_fep(era: str, kind: str) -> None:
    """FEP would open: the first reply delivered within 24h of an entry-point inbound."""
    t0 = ERA[era]
    answer = ask([inbound(t0, referral=True)], MARKETING, t0 + H)
    assert answer.unit is not None
    assert (answer.reason, answer.unit.kind, answer.unit.category) == (FEP_OPENS, kind, REFERRAL)
    assert (answer.unit.free_reason, answer.bucket_scope) == (FREE_ENTRY_POINT, None)


@pytest.mark.parametrize(("era", "opens"), [("cbp-2023", False), ("pmp-2025-07", True)])
def test_a_message_inside_an_open_fep_is_free(era: str, opens: bool) -> None:
    """FEP open: everything delivered inside it is free (CBP: part of the FEP conversation;
    PMP: its own free unit)."""
    t0 = ERA[era]
    events = [inbound(t0, referral=True), delivered("w1", t0 + H)]
    answer = ask(events, UTILITY, t0 + 50 * H)
    assert (answer.reason, answer.opens, answer.free_by_rule) == (FEP_OPEN, opens, True)


def test_a_reply_after_24h_would_not_open_the_fep() -> None:
    """A reply after 24h opens no FEP: a per-message charge."""
    answer = ask([inbound(PMP, referral=True)], MARKETING, PMP + 24 * H)
    assert answer.reason == PER_MESSAGE


# -- the CBP -> PMP switch ---------------------------------------------------------------------


def test_a_utility_template_inside_the_lingering_cbp_conversation_opens_nothing() -> None:
    """A utility conversation opened under cbp-2024-11 keeps covering utility templates."""
    events = [delivered("w1", ts("2025-06-30T20:00"), UTILITY)]
    answer = ask(events, UTILITY, ts("2025-07-01T10:00"))
    assert (answer.opens, answer.reason, answer.joins) == (
        False,
        OPEN_CONVERSATION,
        unit_id(events, "w1"),
    )
    assert ask(events, MARKETING, ts("2025-07-01T10:00")).reason == PER_MESSAGE


# -- what the quote is not -------------------------------------------------------------------


def test_before_the_first_era_nothing_prices_the_message() -> None:
    """Eras start on 2022-02-01."""
    answer = ask([], MARKETING, ts("2021-12-01T00:00"))
    assert (answer.allowed, answer.reason, answer.opens) == (True, NOT_PRICED, False)


@pytest.mark.parametrize(
    ("category", "template"),
    [(MARKETING, False), (SERVICE, True), ("bogus", True)],
    ids=["template-category-without-template", "service-as-template", "unknown"],
)
def test_a_message_that_cannot_exist_is_refused(category: str, template: bool) -> None:
    """A non-template message is a service message; a template has a template category."""
    with pytest.raises(ValueError):
        ask([], category, PMP, template)


def test_both_spellings_of_authentication_international_can_be_quoted() -> None:
    """authentication-international and authentication_international are one category."""
    a = ask([], "authentication-international", PMP)
    b = ask([], "authentication_international", PMP)
    assert a == b
    assert a.unit is not None and a.unit.category == "authentication_international"


def test_quoting_changes_nothing() -> None:
    """The quote works on a copy: the history is unchanged."""
    history = history_of([inbound(CBP), reply("w1", CBP + H)])
    stored = history.dumps()
    quote(PAIR, history, UTC, BOOK, MARKETING, True, CBP + 2 * H)
    assert history.dumps() == stored


def test_a_quote_in_the_past_lists_the_units_it_would_change() -> None:
    """Delivered before an existing template, the message would open the conversation that
    template opened: the template's unit is listed as affected."""
    events = [delivered("w1", CBP + 5 * H, MARKETING)]
    answer = ask(events, MARKETING, CBP + H)
    assert (answer.opens, answer.affects) == (True, (unit_id(events, "w1"),))
    assert ask(events, MARKETING, CBP + 6 * H).affects == ()


@settings(max_examples=80, deadline=None)
@given(
    events=histories(),
    data=st.data(),
    category=st.sampled_from([MARKETING, UTILITY, AUTHENTICATION, SERVICE]),
)
def test_a_quote_is_what_delivering_the_message_would_do(
    events: list[Event], data: Any, category: str
) -> None:
    """The quote uses exactly the model's rules: delivering the message really (at the same
    time, with the category as its only field) gives the unit the quote announced. Two rules
    are also checked straight from the rule book, not from the walk both sides share: a
    free-form message is allowed only inside a customer service window (24 h from one of the
    user's messages), and under per-message pricing every allowed message opens its own unit."""
    moments = {e.timestamp + 1 for e in events}  # just after an event, or a CSW's last second
    moments |= {e.timestamp + 24 * H + d for e in events if isinstance(e, Inbound) for d in (-1, 0)}
    at = data.draw(st.sampled_from(sorted(moments)))
    template = category != SERVICE
    answer = ask(events, category, at, template)
    csw_open = any(
        isinstance(e, Inbound) and e.timestamp <= at < e.timestamp + 24 * H for e in events
    )
    assert answer.allowed == (template or csw_open)
    if not answer.allowed:
        assert (answer.reason, answer.opens, answer.unit) == (CSW_CLOSED, False, None)
        return
    if at >= PMP_STARTS and answer.reason != NOT_PRICED:
        assert answer.opens and answer.unit is not None and answer.unit.kind == "message"
    real = [*events, delivered("zzzz-real", at, category)]
    found = [u for u in evaluate(PAIR, history_of(real), UTC, BOOK).units if u.wamid == "zzzz-real"]
    if answer.opens:
        assert answer.unit is not None
        [unit] = found
        fields = ("kind", "category", "policy", "free_reason", "bucket", "charge_time")
        assert [getattr(unit, f) for f in fields] == [getattr(answer.unit, f) for f in fields]
    else:
        assert found == []

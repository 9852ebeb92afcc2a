"""Hostile input: the parser, the worker and the webhook endpoint under Hypothesis.

Whatever the bytes, the parser answers ``BadPayload`` (a body that is not a JSON object) or a
``ParsedBody`` of well-typed events and rejected items with a reason and a place; the worker
acknowledges every body and quarantines what it cannot use; the endpoint answers 200, 400,
401, 413 or 415, never a 500.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.context import Context, build_context
from processor.core.events import STATUSES, Conversation, Inbound, ParsedBody, Pricing, Status
from processor.core.parse import MAX_TIME, MIN_TIME, parse_body
from processor.errors import BadPayload
from processor.settings import load_settings
from processor.web import create_app
from processor.web.signature import sign
from tests import payloads as p
from tests.conftest import SECRET, VERIFY, signed_headers
from workers.drain import drain, use_context

T = 1_762_000_000  # 2025-11-01, pmp-2025-07
T_CBP = 1_700_000_000  # 2023-11-14, cbp-2023
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_REDIS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ID = re.compile(r"[0-9]{1,32}")
USER = re.compile(r"[0-9]{4,20}|[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
GROUP_USER = re.compile(r"group:[A-Za-z0-9_.+/=-]{1,256}")  # a group's own pair (rule book 7)
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


# -- what Meta sends, and what a hostile sender puts in its place ------------------------------


def meta_bodies() -> list[dict[str, Any]]:
    """Bodies that exercise every field the parser reads."""
    group = {
        **p.status("wamid.G", "delivered", T),
        "recipient_type": "group",
        "recipient_participant_id": "5511911112222",
    }
    statuses = [
        p.status("wamid.S", "sent", T, category="marketing", conversation_id="c1", expires=T + 9),
        p.status("wamid.S", "delivered", T + 1, category="utility", pricing_type="regular"),
        p.status("wamid.F", "failed", T + 2),
        group,
    ]
    messages = [
        p.inbound("wamid.I", T - 5, referral=True),
        p.inbound("wamid.J", T, msg_type="image"),
    ]
    cbp = [  # cbp-2023: the conversation id names the unit
        p.status("wamid.C", "sent", T_CBP, category="utility", conversation_id="c2", expires=T),
        p.status("wamid.C", "delivered", T_CBP + 1, category="utility", conversation_id="c2"),
    ]
    return [
        p.body(p.change(messages=messages, statuses=statuses)),
        p.body(p.change(messages=[p.inbound("wamid.K", T_CBP - 9)], statuses=cbp)),
        p.entries(
            (p.WABA, [p.change(statuses=statuses[:2])]),
            ("310000000000009", [p.change(messages=messages[:1]), {"field": "templates"}]),
        ),
    ]


HUGE_INT = 10**4000  # within Python's 4300-digit str<->int limit: it parses
HOSTILE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.just(HUGE_INT),
    st.just(-HUGE_INT),
    st.floats(),  # nan and +-inf too: Python's json writes and reads them
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e10",
            "1762000000.5",
            "99999999999999",
            "１７６２０００００００",  # fullwidth digits
            "\u0000",
            "\ud800",  # a lone surrogate (escaped in JSON)
            "x" * 5000,
            "sent",
            "delivered",
            "PMP",
            "marketing",
            "authentication-international",
            "group",
            "wamid.I",
            "5511988887777",
            "US.13491208655302741918",
        ]
    ),
)


def _nested(depth: int) -> Any:
    node: Any = 1
    for _ in range(depth):
        node = [node]
    return node


# Values of the right type and shape, but unusual: they get past the parser to the ledger.
PLAUSIBLE = st.one_of(
    st.integers(min_value=MIN_TIME, max_value=MAX_TIME - 1),
    st.integers(min_value=MIN_TIME, max_value=MAX_TIME - 1).map(str),
    st.sampled_from(sorted(STATUSES)),
    st.sampled_from(["CBP", "PMP", "NBP", "regular", "free_customer_service", "free_entry_point"]),
    st.from_regex(NAME, fullmatch=True),
    st.from_regex(USER, fullmatch=True),
    st.text(st.characters(exclude_categories=["Cs", "Cc", "Cf", "Zl", "Zp"]), min_size=1),
)
HOSTILE = st.one_of(
    HOSTILE_SCALARS,
    PLAUSIBLE,
    st.lists(HOSTILE_SCALARS, max_size=3),
    st.dictionaries(
        st.sampled_from(["id", "type", "body", "code", "x"]), HOSTILE_SCALARS, max_size=3
    ),
    st.builds(_nested, st.integers(min_value=1, max_value=70)),
)


def _slots(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key-or-index) of ``node``, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i
            yield from _slots(value)


@st.composite
def hostile_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A Meta body where one to three fields, at any depth, hold an unexpected value (or are
    removed, or gain an unexpected sibling)."""
    doc = copy.deepcopy(draw(st.sampled_from(meta_bodies())))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        slots = list(_slots(doc))
        if not slots:  # everything was deleted
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace" or (action == "delete" and isinstance(container, list)):
            container[key] = draw(HOSTILE)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.sampled_from(["extra", "errors", "pricing", "origin"]))] = draw(
                HOSTILE
            )
        else:
            container.append(draw(HOSTILE))
    return doc


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _items(doc: Any, keys: tuple[str, ...] = ("messages", "statuses")) -> Iterator[Any]:
    """The ``messages[]``/``statuses[]`` items of a (maybe malformed) body."""
    entries = doc.get("entry") if isinstance(doc, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            for key in keys:
                items = value.get(key) if isinstance(value, dict) else None
                yield from items if isinstance(items, list) else []


def _unencodable(value: Any) -> bool:
    return isinstance(value, str) and re.search("[\ud800-\udfff]", value) is not None


def status_body(status: Any) -> dict[str, Any]:
    good = p.status("wamid.OK", "delivered", T, category="marketing", pricing_type="regular")
    return p.body(p.change(statuses=[{**p.status("wamid.X", "sent", T), "status": status}, good]))


# -- the parser ----------------------------------------------------------------------------------


def check_parsed(parsed: ParsedBody) -> None:
    """Events are fully typed; rejected items say why and where, with a bounded preview."""
    assert isinstance(parsed, ParsedBody)
    assert isinstance(parsed.ignored, int) and parsed.ignored >= 0
    for event in parsed.events:
        check_event(event)
    for rejected in parsed.rejected:
        assert isinstance(rejected.reason, str) and rejected.reason.strip()
        assert len(rejected.reason) < 200
        assert isinstance(rejected.path, str) and rejected.path.startswith("entry")
        assert isinstance(rejected.item, str) and len(rejected.item) <= 2_003
        if not rejected.item.endswith("..."):  # else cut at 2,000 characters
            json.loads(rejected.item)


def check_event(event: Inbound | Status) -> None:
    pair = event.pair
    assert ID.fullmatch(pair.waba_id) and ID.fullmatch(pair.phone_number_id)
    assert USER.fullmatch(pair.user_id) or GROUP_USER.fullmatch(pair.user_id)
    participant = getattr(event, "participant", None)
    assert participant is None or USER.fullmatch(participant)
    assert (
        isinstance(event.wamid, str) and 0 < len(event.wamid) <= 512 and event.wamid.isprintable()
    )
    assert type(event.timestamp) is int and MIN_TIME <= event.timestamp < MAX_TIME
    if isinstance(event, Inbound):
        assert NAME.fullmatch(event.msg_type) and type(event.referral) is bool
        return
    assert isinstance(event, Status) and event.status in STATUSES
    assert all(type(code) is int for code in event.error_codes)
    conv = event.conversation
    if conv is not None:
        assert isinstance(conv, Conversation)
        assert conv.id is None or (isinstance(conv.id, str) and 0 < len(conv.id) <= 256)
        assert conv.id is None or not _unencodable(conv.id)  # it names records and keys
        assert conv.expires_at is None or (type(conv.expires_at) is int)
        assert conv.origin is None or NAME.fullmatch(conv.origin)
    pricing = event.pricing
    if pricing is not None:
        assert isinstance(pricing, Pricing)
        assert pricing.billable is None or type(pricing.billable) is bool
        assert pricing.model in (None, "CBP", "PMP", "NBP")
        assert pricing.category is None or NAME.fullmatch(pricing.category)
        assert pricing.type is None or NAME.fullmatch(pricing.type)


def parse_or_refuse(raw: bytes) -> ParsedBody | None:
    """``parse_body``, with BadPayload (only for a body that is not a JSON object) as None."""
    try:
        parsed = parse_body(raw)
    except BadPayload as exc:
        assert str(exc)
        return None
    check_parsed(parsed)
    return parsed


@FUZZ
@given(st.binary(max_size=300))
def test_parser_refuses_or_parses_any_bytes(raw: bytes) -> None:
    """Arbitrary bytes: BadPayload or a well-typed ParsedBody, nothing else."""
    parse_or_refuse(raw)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(JSON_VALUES)
def test_parser_refuses_exactly_the_bodies_that_are_not_objects(value: Any) -> None:
    """Any JSON value: an object parses (maybe to nothing), anything else is BadPayload."""
    parsed = parse_or_refuse(encode(value))
    assert (parsed is not None) == isinstance(value, dict)


@FUZZ
@given(hostile_documents())
def test_parser_types_or_rejects_every_field_of_a_meta_body(doc: dict[str, Any]) -> None:
    """Any field of a Meta body replaced by any value: well-typed events, or items rejected
    with a reason and a path; never another exception."""
    parsed = parse_or_refuse(encode(doc))
    if parsed is not None:
        items = sum(1 for _ in _items(doc))
        assert len(parsed.events) <= items


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000"),
        pytest.param(encode({"a": _nested(65)}), id="nested-past-64"),
        pytest.param(b'{"entry": ' + b"1" * 5_000 + b"}", id="int-5000-digits"),
        pytest.param(b'{"object": "whatsapp_business_account"\xff}', id="invalid-utf8"),
        pytest.param(b"\xef\xbb\xbf{}", id="utf8-bom"),
        pytest.param("{}".encode("utf-16"), id="utf16"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"a": 1} {"b": 2}', id="two-documents"),
        pytest.param(b"null", id="null"),
    ],
)
def test_the_whole_body_is_refused_only_with_bad_payload(raw: bytes) -> None:
    """Too deep, a number past Python's digit limit, not UTF-8, not one object: BadPayload."""
    with pytest.raises(BadPayload):
        parse_body(raw)


def test_huge_and_special_numbers_are_rejected_items_not_crashes() -> None:
    """nan, inf, 1e308 and huge integers in typed fields are rejected item by item."""
    items = [
        {**p.status("wamid.1", "sent", T), "timestamp": value}
        for value in (math.nan, math.inf, -math.inf, 1e308, HUGE_INT, 2**63, -1, True)
    ]
    parsed = parse_body(encode(p.body(p.change(statuses=items))))
    check_parsed(parsed)
    assert not parsed.events and len(parsed.rejected) == len(items)


@pytest.mark.parametrize("status", [["delivered"], {"name": "delivered"}], ids=["list", "object"])
def test_a_status_that_is_not_a_string_is_a_rejected_item(status: Any) -> None:
    """A list or an object as ``status`` is rejected; the rest of the body still parses."""
    parsed = parse_body(encode(status_body(status)))
    assert [e.wamid for e in parsed.events] == ["wamid.OK"]
    assert [r.path for r in parsed.rejected] == ["entry[0].changes[0].value.statuses[0]"]


# -- the worker ----------------------------------------------------------------------------------


GARBAGE = st.sampled_from(
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"text"',
        b"[" * 10_000,
        b'{"object": "whatsapp_business_account", "entry": ' + b"9" * 5_000 + b"}",
        encode({"a": _nested(80)}),
    ]
)
BODIES = st.one_of(
    hostile_documents().map(encode),
    st.sampled_from(meta_bodies()).map(encode),
    GARBAGE,
    st.binary(max_size=100),
)


def backlog(ctx: Context) -> int:
    depths = ctx.inbox.backlog()
    return depths["lag"] + depths["pending"]


def expected_quarantine(raw: bytes) -> int:
    """Items the parser alone sends to quarantine for ``raw`` (the ledger may add more)."""
    try:
        return len(parse_body(raw).rejected)
    except BadPayload:
        return 1


@FUZZ_REDIS
@given(bodies=st.lists(BODIES, min_size=1, max_size=6))
def test_the_worker_acknowledges_every_body_and_quarantines_what_is_malformed(
    ctx: Context, bodies: list[bytes]
) -> None:
    """Hostile bodies in the inbox: the drain does not raise, acknowledges them all, and
    quarantines each malformed body or item with a reason."""
    use_context(ctx)
    before = ctx.quarantine.list(1)["total"]
    for raw in bodies:
        ctx.inbox.push(raw)
    drain()
    assert backlog(ctx) == 0
    quarantine = ctx.quarantine.list(1000)
    added = quarantine["items"][: quarantine["total"] - before]
    assert len(added) >= sum(expected_quarantine(raw) for raw in bodies)
    assert all(item["reason"] and item["body_id"] for item in added)
    assert not [item for item in added if item["reason"].startswith("internal error")]


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def test_the_worker_survives_a_status_that_is_not_a_string(ctx: Context) -> None:
    """The malformed status is quarantined; the good status next to it is applied."""
    use_context(ctx)
    ctx.inbox.push(encode(status_body(["delivered"])))
    totals = drain()
    assert backlog(ctx) == 0
    assert totals["events"] == 1 and totals["quarantined"] == 1


def conversation_body(conversation_id: str) -> dict[str, Any]:
    """A delivered utility template of conversation ``conversation_id``, and another status of
    the same pair in the same body."""
    return p.body(
        p.change(
            statuses=[
                p.status(
                    "wamid.X",
                    "delivered",
                    T_CBP,
                    category="utility",
                    conversation_id=conversation_id,
                ),
                p.status(
                    "wamid.Y", "delivered", T_CBP + 60, category="marketing", conversation_id="c9"
                ),
            ]
        )
    )


def test_a_conversation_id_that_is_not_unicode_text_is_a_rejected_item() -> None:
    """A lone surrogate (valid JSON, not UTF-8) as conversation.id: that status is rejected."""
    parsed = parse_body(encode(conversation_body("\ud800")))
    assert [e.wamid for e in parsed.events] == ["wamid.Y"]


def test_a_conversation_id_that_is_not_unicode_text_spoils_no_other_event(ctx: Context) -> None:
    """The other status of the pair is applied, not quarantined with the bad one."""
    use_context(ctx)
    ctx.inbox.push(encode(conversation_body("\ud800")))
    totals = drain()
    assert backlog(ctx) == 0
    assert totals["records"] >= 1
    reasons = [item["reason"] for item in ctx.quarantine.list()["items"]]
    assert not [r for r in reasons if r.startswith("internal error")]


# -- the endpoint --------------------------------------------------------------------------------


ANSWERS = {200, 400, 401, 413, 415}
MAX_DEPTH = 64  # MAX_JSON_DEPTH's default
LIMIT = 2_048
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/json; charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ]
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)


@pytest.fixture
def small_app(environ: dict[str, str]) -> Iterator[Any]:
    """The app with a 2 KiB body limit, so that 413 is cheap to reach."""
    ctx = build_context(load_settings({**environ, "MAX_BODY_BYTES": str(LIMIT)}))
    app = create_app(ctx=ctx)
    app.config["TESTING"] = True
    yield app
    keys = list(ctx.redis.scan_iter(f"{ctx.settings.redis_prefix}:*"))
    if keys:
        ctx.redis.delete(*keys)
    ctx.close()


@st.composite
def signatures(draw: st.DrawFn, body: bytes) -> str | None:
    good = sign(body, SECRET)
    return draw(
        st.sampled_from(
            [
                None,
                good,
                good.upper().replace("SHA256=", "sha256="),
                good[:-1],
                " " + good,
                "sha256=",
            ]
        )
        | HEADER_TEXT
    )


EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(
        ["Content-Encoding", "X-Hub-Signature", "Authorization", "Accept", "X-Forwarded-For", "X"]
    ),
    HEADER_TEXT,
    max_size=3,
)


@FUZZ_REDIS
@given(
    body=st.one_of(BODIES, st.binary(min_size=LIMIT - 10, max_size=LIMIT + 10)),
    content_type=CONTENT_TYPES,
    extra=EXTRA_HEADERS,
    data=st.data(),
)
def test_the_endpoint_answers_hostile_posts_with_a_4xx_never_a_500(
    small_app: Any, body: bytes, content_type: str, extra: dict[str, str], data: st.DataObject
) -> None:
    """Any body, content type, signature and other headers: 200, 400, 401, 413 or 415."""
    headers = {**extra, "Content-Type": content_type}
    signature = data.draw(signatures(body))
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    reply = small_app.test_client().post("/webhook", data=body, headers=headers)
    assert reply.status_code in ANSWERS
    if len(body) > LIMIT:
        assert reply.status_code == 413
    elif signature is None:
        assert reply.status_code == 401


@FUZZ_REDIS
@given(doc=st.one_of(hostile_documents(), JSON_VALUES.filter(lambda v: isinstance(v, dict))))
def test_a_signed_json_object_is_always_accepted(client: Any, doc: dict[str, Any]) -> None:
    """Signed JSON objects get 200 however odd their fields (the worker sorts them out), or
    400 when nested deeper than MAX_JSON_DEPTH."""
    body = encode(doc)
    reply = client.post("/webhook", data=body, headers=signed_headers(body))
    assert reply.status_code == (200 if depth(doc) <= MAX_DEPTH else 400)


def depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max(map(depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(depth, node), default=0)
    return 0


@FUZZ_REDIS
@given(
    query=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
        HEADER_TEXT | st.sampled_from(["subscribe", VERIFY]),
    )
)
def test_the_handshake_answers_200_or_403(client: Any, query: dict[str, str]) -> None:
    """Any verification query: the challenge echoed as plain text (right token), or 403."""
    reply = client.get("/webhook", query_string=query)
    assert reply.status_code in (200, 403)
    assert reply.mimetype == "text/plain"
    if reply.status_code == 200:
        assert reply.get_data(as_text=True) == query["hub.challenge"]

"""The query API against its own OpenAPI document: schemathesis finds no 500 and no answer
outside the document; no token, no data; no secret in any answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from processor.context import Context
from processor.web.openapi import PATH, document
from tests import payloads as p
from tests.conftest import SECRET, TOKEN, VERIFY, auth, signed_headers
from tests.graph_double import TOKEN as GRAPH_TOKEN
from tests.graph_double import GraphDouble, graph_double
from workers.drain import drain, use_context

T0 = 1_763_798_400  # 2025-11-22T08:00Z, pmp-2025-07
MONTH = "2025-11"
SECRETS = (SECRET, TOKEN, VERIFY, GRAPH_TOKEN)
EXAMPLES = 50
GETS = (
    "/v1/usage",
    "/v1/records",
    "/v1/quarantine",
    "/v1/pending",
    "/v1/discrepancies",
    "/v1/reconciliation",
    "/v1/templates",
)
MONEY = [
    ("GET", "/v1/budgets/{waba_id}"),
    ("PUT", "/v1/budgets/{waba_id}"),
    ("GET", "/v1/alerts"),
    ("POST", "/v1/quote/campaign"),
]
OPERATIONS = [*(("GET", path) for path in GETS), ("POST", "/v1/quote"), *MONEY]
QUOTE = {"phone_number_id": p.PHONE, "user_id": p.USER, "category": "marketing"}
GROUP_QUOTE = {"phone_number_id": p.PHONE, "category": "marketing", "group_id": "Y2FwaV9n",
               "participants": [p.USER, "919811110003"]}  # fmt: skip
CAMPAIGN = {"phone_number_id": p.PHONE, "category": "marketing", "recipients": [p.USER]}
# Well-formed bodies whose acceptance depends on state or on rules a schema cannot say (the
# WABA's currency, increasing thresholds, a known phone number): a documented 400 is fine.
STATEFUL = ("/v1/quote", "/v1/quote/campaign", "/v1/budgets/{waba_id}")


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphDouble]:
    """Meta's Graph API, answering `refresh=1` (with no data points)."""
    with graph_double() as double:
        yield double


@pytest.fixture
def environ(environ: dict[str, str], graph: GraphDouble) -> dict[str, str]:
    return {**environ, "META_GRAPH_URL": graph.url, "META_ACCESS_TOKEN": GRAPH_TOKEN}


def seed(client: Any, ctx: Context) -> None:
    """Two records (one free), a discrepancy, a pending message and a quarantined item."""
    statuses = [
        p.status("wamid.M", "delivered", T0, category="marketing", pricing_type="regular"),
        p.status(
            "wamid.U",
            "delivered",
            T0 + 60,
            user="5511977776666",
            category="utility",
            pricing_type="free_customer_service",  # no open CSW: the model says charged
        ),
        p.status("wamid.P", "delivered", T0 + 120),  # no category yet: pending
        {"id": "wamid.Q", "status": "delivered", "timestamp": "soon"},  # quarantined
    ]
    template = {
        "field": "template_category_update",
        "value": {
            "message_template_id": 278077987957091,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "previous_category": "UTILITY",
            "new_category": "MARKETING",
        },
    }
    docs = [
        p.body(p.change(messages=[p.inbound("wamid.IN", T0 - 100)])),
        p.body(p.change(statuses=statuses)),
        {**p.body(template), "entry": [{"id": p.WABA, "time": T0, "changes": [template]}]},
    ]
    for doc in docs:
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
    use_context(ctx)
    drain()
    seed_reconciliation(ctx)


def seed_reconciliation(ctx: Context) -> None:
    """A stored reconciliation of the seeded month (Meta's side: one point, no COST)."""
    from processor.core.analytics import MetaPoint
    from processor.core.reconcile import Inputs, reconcile
    from processor.reconciling import store

    waba = ctx.ratebook.waba(p.WABA)
    point = MetaPoint(T0, "5511900000000", "BR", "marketing", "REGULAR", "0:MAX", 1, None)
    result = reconcile(
        Inputs(
            waba_id=p.WABA,
            month=MONTH,
            currency=waba.currency,
            tz=waba.timezone,
            fetched_at=T0,
            now=T0,
            tolerance=ctx.settings.reconcile_tolerance,
            points=[point],
            records=list(ctx.queries.records(p.WABA, MONTH)),
            display_numbers={p.PHONE: "5511900000000"},
        )
    )
    store(ctx).save(result, T0)


def operation(app: Any, method: str, path: str) -> Any:
    """The documented operation, loaded from the app's own ``/v1/openapi.json``."""
    return schemathesis.openapi.from_wsgi(PATH, app)[path][method]


def no_secret_in_body(ctx: Any, response: Any, case: Any) -> bool:
    """A custom check: no answer of the API carries the app secret or a token."""
    for value in SECRETS:
        assert value.encode() not in response.content, f"{case.path} answered with a secret"
    return True


def request(client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    path = path.replace("{waba_id}", p.WABA)
    if method == "POST":
        body = CAMPAIGN if path.startswith("/v1/quote/campaign") else QUOTE
        return client.post(path, json={**body, "waba_id": p.WABA}, headers=headers)
    if method == "PUT":
        budget = {"monthly_budget": "10", "currency": "USD"}
        return client.put(path, json=budget, headers=headers)
    joiner = "&" if "?" in path else "?"
    return client.get(f"{path}{joiner}waba_id={p.WABA}&month={MONTH}", headers=headers)


MODES = [
    pytest.param(GenerationMode.POSITIVE, id="valid"),
    pytest.param(GenerationMode.NEGATIVE, id="invalid"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_generated_requests_get_documented_answers(
    app: Any, client: Any, ctx: Context, method: str, path: str, mode: GenerationMode
) -> None:
    """Schemathesis requests (valid and invalid) get no 500 and only answers the document
    allows: status, content type, body schema, 4xx for invalid data, 401 without the token."""
    seed(client, ctx)
    strategy = operation(app, method, path).as_strategy(mode)
    # A quote's acceptance also depends on state (is the phone number known?) and on the
    # category fitting `template`: a well-formed quote may get a documented 400.
    excluded = [positive_data_acceptance] if path in STATEFUL else []

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(
            headers=auth(), additional_checks=[no_secret_in_body], excluded_checks=excluded
        )

    check()


LONG = "1" * 5000


@pytest.mark.parametrize(
    ("path", "query"),
    [
        pytest.param("/v1/quarantine", {"before": "0-0"}, id="before-0-0"),
        pytest.param(
            "/v1/quarantine",
            {"before": "99999999999999999999-0"},
            id="before-above-u64",
        ),
        pytest.param("/v1/quarantine", {"before": "\u0661-1"}, id="before-arabic-digit"),
        pytest.param("/v1/quarantine", {"before": "1-"}, id="before-no-seq"),
        pytest.param("/v1/quarantine", {"limit": "\u00b2"}, id="limit-superscript"),
        pytest.param("/v1/quarantine", {"limit": LONG}, id="limit-5000-digits"),
        pytest.param("/v1/quarantine", {"limit": "\u0661\u0660"}, id="limit-arabic"),
        pytest.param("/v1/quarantine", {"limit": "0"}, id="limit-zero"),
        pytest.param("/v1/quarantine", {"limit": "1001"}, id="limit-too-big"),
        pytest.param("/v1/quarantine", {"limit": "-1"}, id="limit-negative"),
        pytest.param("/v1/quarantine", {"limit": "1e3"}, id="limit-float"),
        pytest.param("/v1/records", {"cursor": "\u00b2"}, id="cursor-superscript"),
        pytest.param("/v1/records", {"cursor": LONG}, id="cursor-5000-digits"),
        pytest.param("/v1/records", {"cursor": str(2**63 + 1)}, id="cursor-too-big"),
        pytest.param("/v1/records", {"format": "xml"}, id="format-unknown"),
        pytest.param(
            "/v1/records",
            {"format": "jsonl", "limit": "abc"},
            id="jsonl-limit-abc",
        ),
        pytest.param(
            "/v1/usage",
            {"month": "\u0662\u0660\u0662\u0665-11"},
            id="month-arabic",
        ),
        pytest.param("/v1/usage", {"month": "2025-13"}, id="month-13"),
        pytest.param("/v1/usage", {"month": "2025-11\n"}, id="month-newline"),
        pytest.param("/v1/usage", {"waba_id": "1" * 33}, id="waba-33-digits"),
        pytest.param("/v1/usage", {"waba_id": "\u0661"}, id="waba-arabic"),
        pytest.param("/v1/pending", {"waba_id": "abc"}, id="pending-waba-abc"),
    ],
)
def test_malformed_query_parameters_get_400(client: Any, path: str, query: dict[str, str]) -> None:
    """Every malformed parameter is a 400 naming it, never a 500 or a silent 200."""
    full = {"waba_id": p.WABA, "month": MONTH, **query}
    reply = client.get(path, query_string=full, headers=auth())
    assert reply.status_code == 400, reply.data
    assert reply.json["error"] == "Bad Request"


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000], ids=["array", "object"])
def test_deeply_nested_quote_body_gets_400(client: Any, body: bytes) -> None:
    """A quote body nested past the JSON decoder's stack is a 400 like any bad JSON."""
    headers = {**auth(), "Content-Type": "application/json"}
    assert client.post("/v1/quote", data=body, headers=headers).status_code == 400


SEEDED = {
    "/v1/usage": {"waba_id": p.WABA, "month": MONTH},
    "/v1/records": {"waba_id": p.WABA, "month": MONTH, "limit": 2},
    "/v1/quarantine": {"limit": 1},
    "/v1/pending": {"waba_id": p.WABA},
    "/v1/discrepancies": {"waba_id": p.WABA, "month": MONTH},
    "/v1/reconciliation": {"waba_id": p.WABA, "month": MONTH},
    "/v1/templates": {"waba_id": p.WABA},
}


@pytest.mark.parametrize("path", GETS)
def test_answers_with_seeded_rows_match_the_document(
    app: Any, client: Any, ctx: Context, path: str
) -> None:
    """Rows of every kind (records, a discrepancy, pending, quarantine) validate, not only
    empty lists."""
    seed(client, ctx)
    case = operation(app, "GET", path).Case(query=SEEDED[path])
    reply = case.call_and_validate(headers=auth(), additional_checks=[no_secret_in_body])
    doc = reply.json()
    assert doc.get("total", doc.get("units", len(doc.get("lines", ())))) >= 1


@pytest.mark.parametrize(
    "body",
    [
        {**QUOTE, "waba_id": p.WABA, "at": "2025-11-22T09:00:00Z"},
        {**QUOTE, "waba_id": p.WABA, "category": "utility", "at": "2025-11-22T07:00:00Z"},
        {**QUOTE, "waba_id": p.WABA, "category": "service", "template": False},
        {**QUOTE, "waba_id": p.WABA, "at": "1990-01-01T00:00:00Z"},
        {**GROUP_QUOTE, "waba_id": p.WABA, "at": "2025-11-22T09:00:00Z"},
    ],
    ids=["marketing", "utility-in-csw", "free-form", "not-priced", "group"],
)
def test_quotes_match_the_document(
    app: Any, client: Any, ctx: Context, body: dict[str, Any]
) -> None:
    """A quote, whatever it answers, has the documented shape."""
    seed(client, ctx)
    case = operation(app, "POST", "/v1/quote").Case(body=body, media_type="application/json")
    reply = case.call_and_validate(headers=auth())
    assert reply.status_code == 200


def test_records_as_json_lines_match_the_document(app: Any, client: Any, ctx: Context) -> None:
    """``format=jsonl`` streams one documented record a line."""
    seed(client, ctx)
    query = {"waba_id": p.WABA, "month": MONTH, "format": "jsonl"}
    reply = operation(app, "GET", "/v1/records").Case(query=query).call_and_validate(headers=auth())
    assert reply.headers["content-type"][0].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in reply.text.splitlines()]
    record = document()["components"]["schemas"]["Record"]
    assert len(lines) == 2
    assert all(set(line) == set(record["required"]) for line in lines)


def test_the_document_is_public_and_lists_every_api_route(app: Any, client: Any) -> None:
    """``/v1/openapi.json`` needs no token and documents every ``/v1`` route the app has,
    each with bearer auth and its 200, 400 and 401 answers."""
    reply = client.get(PATH)
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    doc = reply.json
    assert doc == document()
    routes = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/") and rule.rule != PATH
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == routes == set(OPERATIONS)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    for method, path in OPERATIONS:
        responses = doc["paths"][path][method.lower()]["responses"]
        assert {"200", "400", "401"} <= set(responses)


def _basic(password: str, user: str = "u") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


WRONG = [
    pytest.param({}, id="none"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="bearer-longer"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="bearer-prefix"),
    pytest.param({"Authorization": "Bearer "}, id="bearer-empty"),
    pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    pytest.param({"Authorization": f"Token {TOKEN}"}, id="other-scheme"),
    pytest.param({"Authorization": "Bearer \u00e9t\u00e9"}, id="bearer-latin1"),
    pytest.param(_basic("nope"), id="basic-wrong"),
    pytest.param(_basic("", TOKEN), id="basic-token-as-user"),
    pytest.param({"Authorization": "Basic !!!"}, id="basic-not-base64"),
    pytest.param(
        {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}, id="basic-bytes"
    ),
    pytest.param({"X-Api-Token": TOKEN}, id="other-header"),
]


@pytest.mark.parametrize("headers", WRONG)
@pytest.mark.parametrize(
    ("method", "path"), [*OPERATIONS, ("GET", "/rq/"), ("GET", "/rq/0/data/queues.json")]
)
def test_every_api_path_refuses_a_missing_or_wrong_token(
    client: Any, ctx: Context, method: str, path: str, headers: dict[str, str]
) -> None:
    """No data without the token: 401 whatever the query, and nothing of the ledger in it."""
    seed(client, ctx)
    reply = request(client, method, path, headers)
    assert reply.status_code == 401
    assert "WWW-Authenticate" in reply.headers
    for private in (p.WABA, p.PHONE, p.USER, "wamid"):
        assert private.encode() not in reply.data


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_token_in_the_query_string_is_not_accepted(client: Any, method: str, path: str) -> None:
    """The token is read from the Authorization header only (never from a URL, which gets
    logged)."""
    reply = request(client, method, f"{path}?token={TOKEN}&api_token={TOKEN}", {})
    assert reply.status_code == 401


@pytest.mark.parametrize("headers", [auth(), _basic(TOKEN)], ids=["bearer", "basic"])
def test_the_right_token_opens_every_api_path(
    client: Any, ctx: Context, headers: dict[str, str]
) -> None:
    """Bearer or basic auth (any user name, the token as password) both give access."""
    seed(client, ctx)
    for method, path in [*OPERATIONS, ("GET", "/rq/")]:
        assert request(client, method, path, headers).status_code == 200, path


def test_no_answer_lists_a_secret(client: Any, ctx: Context) -> None:
    """Neither the API, the document, health, metrics nor the dashboard echo a secret."""
    seed(client, ctx)
    query = f"waba_id={p.WABA}&month={MONTH}"
    paths = [
        *(f"{path}?{query}" for path in GETS),
        f"/v1/records?{query}&format=jsonl",
        PATH,
        "/healthz",
        "/metrics",
        "/rq/",
        "/rq/0/view/queues",
        "/rq/0/view/workers",
        "/rq/0/data/queues.json",
        "/rq/0/data/workers.json",
    ]
    replies = {path: client.get(path, headers=auth(), follow_redirects=True) for path in paths}
    replies["/v1/quote"] = request(client, "POST", "/v1/quote", auth())
    for path, reply in replies.items():
        assert reply.status_code == 200, path
        for value in SECRETS:
            assert value.encode() not in reply.data, f"{path} lists a secret"

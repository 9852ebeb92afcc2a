"""The query API against its own OpenAPI document: schemathesis finds no 500 and no answer
outside the document; no token, no data; no secret in any answer."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from processor.context import Context
from processor.web.openapi import PATH, document
from tests import payloads as p
from tests.conftest import SECRET, TOKEN, VERIFY, auth, signed_headers
from workers.drain import drain, use_context

T0 = 1_763_798_400  # 2025-11-22T08:00Z, pmp-2025-07
MONTH = "2025-11"
SECRETS = (SECRET, TOKEN, VERIFY)
API_PATHS = ("/v1/usage", "/v1/records", "/v1/quarantine", "/v1/pending", "/v1/discrepancies")


def seed(client: Any, ctx: Context) -> None:
    """A record, a free record, a discrepancy, a pending message and a quarantined item."""
    docs = [
        p.body(p.change(messages=[p.inbound("wamid.IN", T0 - 100)])),
        p.body(
            p.change(
                statuses=[
                    p.status("wamid.M", "delivered", T0, category="marketing", pricing_type="regular"),
                    p.status(
                        "wamid.U",
                        "delivered",
                        T0 + 60,
                        user="5511977776666",
                        category="utility",
                        pricing_type="free_customer_service",
                    ),
                    p.status("wamid.P", "delivered", T0 + 120),
                    {"id": "wamid.Q", "status": "delivered", "timestamp": "soon"},
                ]
            )
        ),
    ]
    for doc in docs:
        body = p.raw(doc)
        assert client.post("/webhook", data=body, headers=signed_headers(body)).status_code == 200
    use_context(ctx)
    drain()


@pytest.fixture
def api_schema(app: Any, client: Any, ctx: Context) -> Any:
    seed(client, ctx)
    return schemathesis.openapi.from_wsgi(PATH, app)


schema = schemathesis.pytest.from_fixture("api_schema")


def no_secret_in_body(ctx: Any, response: Any, case: Any) -> bool:
    """A custom check: no answer of the API carries the app secret or a token."""
    for value in SECRETS:
        assert value.encode() not in response.content, f"{case.path} answered with a secret"
    return True


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_query_api_conforms_to_its_openapi_document(case: Any) -> None:
    """Generated requests (valid and invalid) get 200/400, never a 500, always as documented."""
    case.call_and_validate(headers=auth(), additional_checks=[no_secret_in_body])


def test_the_document_is_public_and_lists_every_api_path(client: Any) -> None:
    """``/v1/openapi.json`` needs no token and documents each query endpoint with bearer auth."""
    reply = client.get(PATH)
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    doc = reply.json
    assert doc == document()
    assert sorted(doc["paths"]) == sorted(API_PATHS)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    for path in API_PATHS:
        responses = doc["paths"][path]["get"]["responses"]
        assert {"200", "400", "401"} <= set(responses)


def test_the_seeded_ledger_shows_every_documented_shape(client: Any, ctx: Context) -> None:
    """The seed fills records, a discrepancy, a pending item and quarantine: the schema test
    above validates real rows, not only empty lists."""
    seed(client, ctx)
    query = f"waba_id={p.WABA}&month={MONTH}"
    records = client.get(f"/v1/records?{query}", headers=auth()).json
    assert records["total"] == 3
    assert client.get(f"/v1/discrepancies?{query}", headers=auth()).json["total"] == 1
    assert client.get("/v1/pending", headers=auth()).json["total"] == 1
    assert client.get("/v1/quarantine", headers=auth()).json["total"] == 1


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"u:{password}".encode()).decode()}


WRONG = [
    pytest.param({}, id="none"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="bearer-longer"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="bearer-prefix"),
    pytest.param({"Authorization": "Bearer "}, id="bearer-empty"),
    pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    pytest.param({"Authorization": f"Token {TOKEN}"}, id="other-scheme"),
    pytest.param({"Authorization": "Bearer \u00e9t\u00e9"}, id="bearer-latin1"),
    pytest.param(_basic("nope"), id="basic-wrong"),
    pytest.param({"Authorization": "Basic !!!"}, id="basic-not-base64"),
    pytest.param({"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}, id="basic-bytes"),
    pytest.param({"X-Api-Token": TOKEN}, id="other-header"),
]


@pytest.mark.parametrize("headers", WRONG)
@pytest.mark.parametrize("path", [*API_PATHS, "/rq/", "/rq/queues.json"])
def test_every_api_path_refuses_a_missing_or_wrong_token(
    client: Any, path: str, headers: dict[str, str]
) -> None:
    """No data without the token: 401 whatever the query, and nothing of the ledger in it."""
    reply = client.get(f"{path}?waba_id={p.WABA}&month={MONTH}", headers=headers)
    assert reply.status_code == 401
    assert "WWW-Authenticate" in reply.headers
    assert p.WABA.encode() not in reply.data


@pytest.mark.parametrize("path", API_PATHS)
def test_the_token_in_the_query_string_is_not_accepted(client: Any, path: str) -> None:
    """The token is read from the Authorization header only (never from a URL that gets logged)."""
    reply = client.get(f"{path}?waba_id={p.WABA}&month={MONTH}&token={TOKEN}&api_token={TOKEN}")
    assert reply.status_code == 401


@pytest.mark.parametrize("headers", [auth(), _basic(TOKEN)], ids=["bearer", "basic"])
def test_the_right_token_opens_every_api_path(client: Any, headers: dict[str, str]) -> None:
    """Bearer or basic auth (password = the token) both give access."""
    for path in API_PATHS:
        reply = client.get(f"{path}?waba_id={p.WABA}&month={MONTH}", headers=headers)
        assert reply.status_code == 200, path


def test_no_answer_lists_a_secret(client: Any, ctx: Context) -> None:
    """Neither the API, the document, health, metrics nor the dashboard echo a secret."""
    seed(client, ctx)
    query = f"waba_id={p.WABA}&month={MONTH}"
    paths = [
        *(f"{path}?{query}" for path in API_PATHS),
        f"/v1/records?{query}&format=jsonl",
        PATH,
        "/healthz",
        "/metrics",
        "/rq/",
        "/rq/queues.json",
        "/rq/workers.json",
    ]
    for path in paths:
        reply = client.get(path, headers=auth())
        assert reply.status_code == 200, path
        for value in SECRETS:
            assert value.encode() not in reply.data, f"{path} lists a secret"

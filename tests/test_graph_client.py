"""The Graph API client against a real local server answering like Meta (tests/graph_double.py):
paging, retries on 429/5xx/throttling codes, Meta's error bodies, the token kept out of URLs
and logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest

from processor.core.analytics import parse_pages
from processor.graph import GraphClient, GraphError
from tests.fault_helpers import free_port
from tests.graph_double import TOKEN, GraphDouble, graph_double, point

WABA = "310000000000001"
NOV_1 = 1_761_955_200
DEC_1 = 1_764_547_200


@pytest.fixture
def graph() -> Iterator[GraphDouble]:
    with graph_double() as double:
        double.points[WABA] = [
            point(NOV_1 + d * 86_400, "5511900000000", "BR", "MARKETING", "REGULAR", d + 1,
                  f"{(d + 1) * 0.0625:.4f}")
            for d in range(30)
        ]  # fmt: skip
        yield double


def client(graph: GraphDouble, **kw: object) -> GraphClient:
    return GraphClient(graph.url, "v25.0", TOKEN, backoff=0.01, **kw)  # type: ignore[arg-type]


def fetch(graph: GraphDouble, **kw: object) -> list[dict[str, object]]:
    with client(graph, **kw) as c:
        return c.pricing_analytics(WABA, NOV_1, DEC_1)


def test_every_page_is_followed(graph: GraphDouble) -> None:
    graph.page_size = 7
    pages = fetch(graph)
    assert len(pages) == 5  # 30 points, 7 a page
    points = parse_pages(pages).points
    assert [p.volume for p in points] == list(range(1, 31))
    assert points[1].cost == Decimal("0.1250")  # exact: costs decoded as decimals


def test_the_request_is_the_documented_one(graph: GraphDouble) -> None:
    fetch(graph)
    first = graph.seen[0]
    assert first.path == f"/v25.0/{WABA}"
    assert first.query["fields"] == [
        f"pricing_analytics.start({NOV_1}).end({DEC_1}).granularity(DAILY)"
        '.metric_types(["COST","VOLUME"])'
        '.dimensions(["PHONE","COUNTRY","PRICING_CATEGORY","PRICING_TYPE","TIER"])'
    ]
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"


def test_the_token_is_never_in_a_url_even_when_meta_puts_it_in_paging_next(
    graph: GraphDouble,
) -> None:
    graph.page_size = 10
    fetch(graph)
    assert len(graph.seen) == 3
    for seen in graph.seen:
        assert "access_token" not in seen.query
        assert TOKEN not in seen.path and TOKEN not in str(seen.query)


def test_429_then_success_is_retried(graph: GraphDouble) -> None:
    graph.fail(429, 4, times=1, message="(#4) Application request limit reached")
    assert len(parse_pages(fetch(graph)).points) == 30
    assert len(graph.seen) == 2


def test_500_then_success_is_retried(graph: GraphDouble) -> None:
    graph.fail(500, 1, times=2, message="An unknown error occurred")
    assert len(parse_pages(fetch(graph)).points) == 30
    assert len(graph.seen) == 3


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80007])
def test_throttling_codes_are_retried_even_as_400(graph: GraphDouble, code: int) -> None:
    graph.fail(400, code, times=1, message="rate limited")
    assert len(parse_pages(fetch(graph)).points) == 30


def test_retries_are_bounded_and_meta_error_is_kept(graph: GraphDouble) -> None:
    graph.fail(503, 2, times=10, message="Service temporarily unavailable")
    with pytest.raises(GraphError) as caught:
        fetch(graph, attempts=3)
    assert len(graph.seen) == 3
    assert caught.value.message == "Service temporarily unavailable"
    assert caught.value.fbtrace_id == "AbCdEfGh123"


def test_an_error_body_is_not_retried_and_names_message_and_trace(graph: GraphDouble) -> None:
    graph.fail_raw(
        400,
        {
            "error": {
                "message": "(#100) Tried accessing nonexisting field (pricing_analytics)",
                "type": "OAuthException",
                "code": 100,
                "fbtrace_id": "A1b2C3d4E5",
            }
        },
    )
    with pytest.raises(GraphError) as caught:
        fetch(graph)
    assert len(graph.seen) == 1
    assert caught.value.message.startswith("(#100) Tried accessing")
    assert (caught.value.fbtrace_id, caught.value.code) == ("A1b2C3d4E5", 100)


def test_a_bad_token_is_meta_s_error_190(graph: GraphDouble) -> None:
    with (
        GraphClient(graph.url, "v25.0", "wrong-token", backoff=0.01) as c,
        pytest.raises(GraphError) as caught,
    ):
        c.pricing_analytics(WABA, NOV_1, DEC_1)
    assert caught.value.code == 190


def test_an_unreachable_graph_api_is_a_graph_error() -> None:
    with (
        GraphClient(f"http://127.0.0.1:{free_port()}", "v25.0", TOKEN, backoff=0.01) as c,
        pytest.raises(GraphError) as caught,
    ):
        c.pricing_analytics(WABA, NOV_1, DEC_1)
    assert "cannot reach" in caught.value.message
    assert caught.value.fbtrace_id is None


def test_a_paging_link_to_another_host_is_not_followed(graph: GraphDouble) -> None:
    with client(graph) as c, pytest.raises(GraphError):
        c.safe_link("https://evil.example/v25.0/1/pricing_analytics?after=1")


def test_paging_links_lose_their_access_token(graph: GraphDouble) -> None:
    with client(graph) as c:
        link = c.safe_link(f"{graph.url}/v25.0/1/pricing_analytics?after=X&access_token=T&b=2")
    assert link == f"{graph.url}/v25.0/1/pricing_analytics?after=X&b=2"


def test_no_log_line_carries_the_token(
    graph: GraphDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    graph.page_size = 10
    graph.fail(429, 4)
    fetch(graph)
    assert caplog.records  # retries and pages are logged...
    assert all(TOKEN not in r.getMessage() for r in caplog.records)  # ...never the token

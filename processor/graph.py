"""A small client of Meta's Graph API, for ``pricing_analytics``.

One :class:`requests.Session` (connection reuse), a timeout on every call, bounded retries with
exponential backoff on connection errors, 5xx, 429 and Meta's throttling codes. The access token
travels only in the ``Authorization`` header: never in a URL (``paging.next`` links from Meta
carry an ``access_token`` parameter, which is removed before they are followed) and never in a
log line or an error message.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

# Meta's rate-limit and throttling error codes (Graph API "Error codes" and WhatsApp's):
# 4 app, 17 user, 32 page, 613 calls within a period, 80007 WhatsApp account rate limit,
# 130429 Cloud API throughput, 131048 spam rate limit, 131056 pair rate limit; 1 and 2 are
# Meta's "unknown / temporary" errors that ask to retry.
THROTTLING_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131048, 131056})
FIELDS = (
    "pricing_analytics.start({start}).end({end}).granularity(DAILY)"
    '.metric_types(["COST","VOLUME"])'
    '.dimensions(["PHONE","COUNTRY","PRICING_CATEGORY","PRICING_TYPE","TIER"])'
)
MAX_PAGES = 1_000


class GraphError(Exception):
    """Meta could not be asked, or answered with an error."""

    def __init__(
        self, message: str, fbtrace_id: str | None = None, code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.fbtrace_id, self.code = message, fbtrace_id, code

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "fbtrace_id": self.fbtrace_id, "code": self.code}


class GraphClient:
    def __init__(
        self,
        base_url: str,
        version: str,
        token: str,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        attempts: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.version = version.strip("/")
        self.timeout, self.attempts = timeout, max(1, attempts)
        self.backoff, self.max_backoff, self.sleep = backoff, max_backoff, sleep
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"
        self.session.trust_env = False  # no proxy settings or .netrc credentials from outside

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def pricing_analytics(self, waba_id: str, start: int, end: int) -> list[dict[str, Any]]:
        """Every page of the WABA's daily pricing analytics for ``[start, end)``."""
        url = f"{self.base}/{self.version}/{waba_id}"
        params: dict[str, str] | None = {"fields": FIELDS.format(start=start, end=end)}
        pages: list[dict[str, Any]] = []
        while url and len(pages) < MAX_PAGES:
            page = self.get(url, params)
            pages.append(page)
            url, params = self._next(page), None
        log.info("pricing_analytics of WABA %s: %d page(s)", waba_id, len(pages))
        return pages

    def _next(self, page: dict[str, Any]) -> str:
        node = page.get("pricing_analytics", page)
        paging = node.get("paging") if isinstance(node, dict) else None
        link = paging.get("next") if isinstance(paging, dict) else None
        if not isinstance(link, str) or not link:
            return ""
        return self.safe_link(link)

    def safe_link(self, link: str) -> str:
        """``link`` without any ``access_token``; refused unless it points at our Graph host
        (the bearer token must never be sent anywhere else)."""
        parts = urlsplit(link)
        ours = urlsplit(self.base)
        if (parts.scheme, parts.netloc) != (ours.scheme, ours.netloc):
            raise GraphError("paging.next points outside META_GRAPH_URL; not followed")
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        kept = urlencode([(k, v) for k, v in query if k != "access_token"])
        return urlunsplit((parts.scheme, parts.netloc, parts.path, kept, ""))

    def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET with retries; the decoded JSON object (numbers with a fraction as Decimal)."""
        last: GraphError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self._pause(attempt, last))
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                last = GraphError(f"cannot reach the Graph API: {exc.__class__.__name__}")
                log.warning(
                    "Graph API unreachable (%s), attempt %d", exc.__class__.__name__, attempt + 1
                )
                continue
            doc = _decode(response)
            if response.status_code == 200 and isinstance(doc, dict) and "error" not in doc:
                return doc
            last = _error(response.status_code, doc)
            if not _retryable(response.status_code, last):
                raise last
            log.warning(
                "Graph API answered %s (code %s, fbtrace_id %s), attempt %d",
                response.status_code, last.code, last.fbtrace_id, attempt + 1,
            )  # fmt: skip
        assert last is not None
        raise last

    def _pause(self, attempt: int, last: GraphError | None) -> float:
        base: float = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: retries of many workers spread


def _decode(response: requests.Response) -> Any:
    try:
        return json.loads(response.content.decode("utf-8"), parse_float=Decimal)
    except ValueError:
        return None


def _error(status: int, doc: Any) -> GraphError:
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return GraphError(f"the Graph API answered HTTP {status} without an error object")
    message = error.get("message")
    trace = error.get("fbtrace_id")
    code = error.get("code")
    return GraphError(
        str(message)[:500] if message else f"the Graph API answered HTTP {status}",
        str(trace)[:100] if trace else None,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def _retryable(status: int, error: GraphError) -> bool:
    return status >= 500 or status == 429 or error.code in THROTTLING_CODES

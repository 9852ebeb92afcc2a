"""A real local HTTP server that answers like Meta's Graph API for ``pricing_analytics``.

It serves the documented answer: the first page ``{"pricing_analytics": {"data": [{"data_points":
[...]}], "paging": {...}}, "id": ...}``, later pages (``paging.next``) ``{"data": [...],
"paging": {...}}``; ``paging.next`` carries an ``access_token`` parameter, as Meta's do. Errors
are Meta's error objects (``error.message``, ``type``, ``code``, ``fbtrace_id``).

Scripted failures (``double.fail(status, code, times)``) are served before the data. Every request
is recorded (path, query, headers) so that tests can check what the client sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fault_helpers import free_port

TOKEN = "EAAG-test-graph-token-0123456789"


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class GraphDouble:
    port: int
    points: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # waba -> points
    page_size: int = 50
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, status: int, code: int, times: int = 1, message: str = "x") -> None:
        for _ in range(times):
            self.failures.append((status, error_body(message, code)))

    def fail_raw(self, status: int, body: dict[str, Any]) -> None:
        self.failures.append((status, body))


def error_body(message: str, code: int, trace: str = "AbCdEfGh123") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": trace,
        }
    }


def _handler(double: GraphDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            with double.lock:
                double.seen.append(Seen(parts.path, query, dict(self.headers)))
                failure = double.failures.pop(0) if double.failures else None
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(401, error_body("Invalid OAuth access token.", 190))
            if "access_token" in query:  # the client must never put the token in a URL
                return self._send(400, error_body("token in the URL", 100))
            if failure is not None:
                return self._send(*failure)
            self._serve(parts.path, query)

        def _serve(self, path: str, query: dict[str, list[str]]) -> None:
            first = re.fullmatch(r"/v[0-9.]+/([0-9]+)", path)
            later = re.fullmatch(r"/v[0-9.]+/([0-9]+)/pricing_analytics", path)
            if first:
                waba, offset = first.group(1), 0
                fields = query.get("fields", [""])[0]
                found = re.search(r"start\(([0-9]+)\)\.end\(([0-9]+)\)", fields)
                if not fields.startswith("pricing_analytics") or not found:
                    return self._send(400, error_body("bad fields", 100))
                start, end = int(found.group(1)), int(found.group(2))
            elif later:
                waba = later.group(1)
                offset = int(query["after"][0])
                start, end = int(query["since"][0]), int(query["until"][0])
            else:
                return self._send(404, error_body("Unknown path components", 2500))
            chosen = [p for p in double.points.get(waba, []) if start <= p["start"] < end]
            page = chosen[offset : offset + double.page_size]
            node: dict[str, Any] = {"data": [{"data_points": page}]}
            following = offset + double.page_size
            node["paging"] = {"cursors": {"before": str(offset), "after": str(following)}}
            if following < len(chosen):
                node["paging"]["next"] = (
                    f"{double.url}/v25.0/{waba}/pricing_analytics?since={start}&until={end}"
                    f"&after={following}&access_token={TOKEN}"
                )
            body = {"pricing_analytics": node, "id": waba} if first else node
            self._send(200, body)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def point(
    start: int,
    phone: str,
    country: str,
    category: str,
    ptype: str,
    volume: int,
    cost: str | None,
    tier: str | None = None,
    day: int = 86_400,
) -> dict[str, Any]:
    """A data point as Meta shapes it (``cost`` omitted when None: partner credit lines)."""
    item: dict[str, Any] = {
        "start": start,
        "end": start + day,
        "phone_number": phone,
        "country": country,
        "pricing_type": ptype,
        "pricing_category": category,
        "volume": volume,
    }
    if tier is not None:
        item["tier"] = tier
    if cost is not None:
        item["cost"] = json.loads(cost)  # a JSON number, as Meta sends it
    return item


@contextmanager
def graph_double() -> Iterator[GraphDouble]:
    double = GraphDouble(port=free_port())
    server = ThreadingHTTPServer(("127.0.0.1", double.port), _handler(double))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()

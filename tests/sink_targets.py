"""Local servers for the sink targets, each answering as its API documents.

- webhook: checks ``X-WA-Billing-Signature``; stores events by ``id`` (a receiver deduplicating).
- OpenMeter ``POST /api/v1/events``: CloudEvents (one, or a batch), ``400`` when an event lacks
  a required attribute, ``204`` otherwise; deduplicates by (``source``, ``id``) silently.
- Lago ``POST /api/v1/events/batch``: bearer key, at most 100 events, ``422`` with
  ``error_details`` per position (``transaction_id: value_already_exist`` for a stored one,
  ``subscription_not_found``); nothing of a refused batch is stored.
- Stripe ``POST /v1/billing/meter_events``: form-encoded, bearer key, ``400`` for a duplicate
  identifier ("An event already exists with identifier ..."), for a timestamp older than 35
  days or more than 5 minutes ahead, or a value that is not a number.

``down = True`` makes a server answer ``503`` to everything (a target that is away).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from processor.web.signature import sign

SECRET = "sink-webhook-secret"
LAGO_KEY = "lago-test-key"
STRIPE_KEY = "sk_test_123"


class Target:
    """What one target stored; ``handle`` returns (status, headers, body)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False
        self.requests = 0
        self.events: dict[str, Any] = {}
        self.duplicates = 0

    def handle(
        self, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:  # pragma: no cover - overridden
        raise NotImplementedError


def _json(status: int, doc: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()


class Webhook(Target):
    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if headers.get("X-WA-Billing-Signature") != sign(body, SECRET):
            return _json(401, {"error": "bad signature"})
        doc = json.loads(body)
        refused = [e["id"] for e in doc["events"] if e["record"].get("category") == "refuse-me"]
        if refused:
            return _json(400, {"error": f"refused {refused}"})
        for event in doc["events"]:
            if event["id"] in self.events:
                self.duplicates += 1
            self.events[event["id"]] = event
        return _json(200, {"received": len(doc["events"])})


class OpenMeter(Target):
    REQUIRED = ("specversion", "id", "source", "type", "subject")

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != "/api/v1/events":
            return _json(404, {"title": "not found"})
        kind = headers.get("Content-Type", "")
        doc = json.loads(body)
        events = doc if kind.startswith("application/cloudevents-batch+json") else [doc]
        for event in events:
            if any(not event.get(k) for k in self.REQUIRED) or event.get("data") is None:
                return _json(400, {"type": "about:blank", "title": "Bad Request",
                                   "status": 400, "detail": "invalid event"})  # fmt: skip
        for event in events:
            key = f"{event['source']}|{event['id']}"
            if key in self.events:
                self.duplicates += 1
                continue
            self.events[key] = event
        return 204, {}, b""


class Lago(Target):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: set[str] = set()

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if headers.get("Authorization") != f"Bearer {LAGO_KEY}":
            return _json(401, {"status": 401, "error": "Unauthorized"})
        if path != "/api/v1/events/batch":
            return _json(404, {"status": 404, "error": "Not Found"})
        events = json.loads(body)["events"]
        if len(events) > 100:
            return _json(422, {"status": 422, "error": "Unprocessable Entity",
                               "code": "validation_errors",
                               "error_details": {"events": ["too_many_events"]}})  # fmt: skip
        details: dict[str, Any] = {}
        seen = set()
        for i, event in enumerate(events):
            errors: dict[str, list[str]] = {}
            tid = event.get("transaction_id")
            if not tid:
                errors["transaction_id"] = ["value_is_mandatory"]
            elif tid in self.events or tid in seen:
                errors["transaction_id"] = ["value_already_exist"]
            if event.get("external_subscription_id") not in self.subscriptions:
                errors["external_subscription_id"] = ["subscription_not_found"]
            if not event.get("code"):
                errors["code"] = ["value_is_mandatory"]
            seen.add(tid)
            if errors:
                details[str(i)] = errors
        if details:
            self.duplicates += sum(
                1 for e in details.values() if e == {"transaction_id": ["value_already_exist"]}
            )
            return _json(422, {"status": 422, "error": "Unprocessable Entity",
                               "code": "validation_errors", "error_details": details})  # fmt: skip
        for event in events:
            self.events[event["transaction_id"]] = event
        return _json(200, {"events": events})


class Stripe(Target):
    def __init__(self) -> None:
        super().__init__()
        self.now = time.time

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if headers.get("Authorization") != f"Bearer {STRIPE_KEY}":
            return _error(401, "Invalid API Key provided")
        if path != "/v1/billing/meter_events":
            return _error(404, "Unrecognized request URL")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, "Invalid request: expected form-encoded parameters")
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        for name in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            if not form.get(name):
                return _error(400, f"Missing required param: {name}.")
        try:
            Decimal(form["payload[value]"])
        except InvalidOperation:
            return _error(400, "Invalid value: must be a number.")
        at = int(form.get("timestamp") or self.now())
        if at < self.now() - 35 * 86_400 or at > self.now() + 300:
            return _error(400, "Timestamp must be within the past 35 calendar days.")
        identifier = form.get("identifier") or f"gen-{len(self.events)}"
        if identifier in self.events:
            self.duplicates += 1
            return _error(400, f"An event already exists with identifier {identifier}.")
        self.events[identifier] = form
        return _json(200, {"object": "billing.meter_event", "identifier": identifier,
                           "event_name": form["event_name"], "timestamp": at,
                           "payload": {"stripe_customer_id": form["payload[stripe_customer_id]"],
                                       "value": form["payload[value]"]}})  # fmt: skip


def _error(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return _json(status, {"error": {"type": "invalid_request_error", "message": message}})


def _handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with target.lock:
                target.requests += 1
                if target.down:
                    status, headers, out = _json(503, {"error": "unavailable"})
                else:
                    status, headers, out = target.handle(self.path, self.headers, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(target: Target) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(target))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

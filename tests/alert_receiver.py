"""A real local HTTP receiver for alert webhooks, with a scripted answer per attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workers.courier import SIGNATURE_HEADER

ALERT_SECRET = "alert-receiver-secret"
TIMEOUT = 0.5


class Receiver:
    """A webhook receiver whose answers per alert follow ``script`` ("fail", "hang", "ok"),
    the last one repeated."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.requests: list[tuple[float, str, dict[str, Any], bool]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = (
                    "sha256=" + hmac.new(ALERT_SECRET.encode(), body, hashlib.sha256).hexdigest()
                )
                good = hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, ""))
                doc = json.loads(body)
                with receiver.lock:
                    seen = sum(1 for r in receiver.requests if r[1] == doc["id"])
                    receiver.requests.append((time.monotonic(), doc["id"], doc, good))
                action = receiver.script[min(seen, len(receiver.script) - 1)]
                if action == "hang":
                    time.sleep(TIMEOUT * 3)
                status = 500 if action == "fail" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the courier gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, alert_id: str) -> list[tuple[float, str, dict[str, Any], bool]]:
        with self.lock:
            return [r for r in self.requests if r[1] == alert_id]

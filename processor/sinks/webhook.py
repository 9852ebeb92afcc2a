"""The signed cost webhook: ``POST $SINK_WEBHOOK_URL`` per batch of record versions.

Body (JSON): ``{"events": [{"id": "<record_id>:<version>", "type": "billing_record.version",
"record": {...the record, as /v1/records shows it...}}]}``, at most 100 events. Header
``X-WA-Billing-Signature: sha256=<hex HMAC-SHA256 of the raw body with SINK_WEBHOOK_SECRET>``
(the same scheme as the alert webhooks). The receiver must treat ``id`` as an idempotency key:
a batch is sent again after a timeout or a crash. Any ``2xx`` accepts the batch; ``401``,
``403``, ``408``, ``409``, ``425``, ``429``, ``5xx`` and network errors are retried with
backoff; another ``4xx`` is narrowed down to the versions it refuses (halves are sent
again), which are parked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.sinks.base import Http, Outcome, Sink, Version, dumps, reason, split_rejects
from processor.store.queries import public
from processor.web.signature import sign

HEADER = "X-WA-Billing-Signature"
RATE = 50.0


def event(version: Version) -> dict[str, Any]:
    return {"id": version.key, "type": "billing_record.version", "record": public(version.record)}


class WebhookSink(Sink):
    name = "webhook"
    max_batch = 100

    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.http = Http(timeout, RATE, {})
        self.url, self.secret = url, secret

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        outcome = Outcome()
        for position, why in split_rejects(list(versions), self._post).items():
            outcome.reject(versions[position], f"webhook {why}")
        return outcome

    def _post(self, versions: Sequence[Version]) -> str | None:
        body = dumps({"events": [event(v) for v in versions]})
        headers = {"Content-Type": "application/json", HEADER: sign(body, self.secret)}
        response = self.http.post(self.url, data=body, headers=headers)
        return None if response.ok else reason(response)

    def close(self) -> None:
        self.http.close()

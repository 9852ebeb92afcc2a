"""The alert courier: delivers recorded alerts as signed JSON POSTs to ``ALERT_WEBHOOK_URL``.

A thread in every worker process (beside the janitor), or ``wa-billing alerts deliver``. It reads
the outbox stream (``{p}:alerts:outbox``) through a consumer group, so that each new alert is
taken by one courier; an alert stays in the group's pending list until it is final (delivered,
or failed after ``ALERT_MAX_ATTEMPTS``), and any courier retries what is due, so nothing is
stranded by a courier that died. A short lock per alert keeps two couriers from posting the same
alert at once; the receiver still gets the alert's ``id`` (also ``Idempotency-Key``) to
deduplicate on, since a POST whose answer was lost is sent again.

The body is the alert without its delivery state; ``X-WA-Billing-Signature`` is
``sha256=<hex HMAC-SHA256 of the body with ALERT_WEBHOOK_SECRET>``. Retries back off
exponentially from ``ALERT_RETRY_SECONDS`` (capped at 5 minutes).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
import requests

from processor.context import Context
from processor.store import codec
from processor.store.alerts import Alerts
from processor.web.signature import sign

log = logging.getLogger(__name__)
GROUP = "courier"
SIGNATURE_HEADER = "X-WA-Billing-Signature"
MAX_BACKOFF = 300.0
PENDING, SENT, FAILED = "pending", "sent", "failed"
BATCH = 100


def payload(alert: dict[str, Any]) -> bytes:
    """The POST body: the alert without its delivery state, compact, keys sorted."""
    doc = {k: v for k, v in alert.items() if k != "delivery"}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def backoff(attempts: int, base: float) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return float(min(MAX_BACKOFF, base * 2 ** max(0, attempts - 1)))


class Courier:
    def __init__(self, ctx: Context, name: str) -> None:
        settings = ctx.settings
        if not settings.alert_webhook_url:
            raise ValueError("ALERT_WEBHOOK_URL is not set")
        self.ctx, self.name = ctx, name
        self.url, self.secret = settings.alert_webhook_url, settings.alert_webhook_secret
        self.alerts = Alerts(ctx.redis, ctx.keys)
        self.session = requests.Session()

    def ensure_group(self) -> None:
        try:
            self.ctx.redis.xgroup_create(self.ctx.keys.alerts_outbox, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def tick(self, now: float | None = None) -> int:
        """Take new alerts, and attempt every one that is due; return attempts made."""
        self.ensure_group()
        r, outbox = self.ctx.redis, self.ctx.keys.alerts_outbox
        r.xreadgroup(GROUP, self.name, {outbox: ">"}, count=BATCH)  # into the pending list
        attempts = 0
        for entry in r.xpending_range(outbox, GROUP, min="-", max="+", count=BATCH):
            stream_id = codec.text(entry["message_id"])
            found = r.xrange(outbox, stream_id, stream_id)
            if not found:  # trimmed away: nothing left to deliver
                r.xack(outbox, GROUP, stream_id)
                continue
            alert_id = codec.text(codec.mapping(found[0][1])[b"id"])
            attempts += self._one(stream_id, alert_id, time.time() if now is None else now)
        return attempts

    def _one(self, stream_id: str, alert_id: str, now: float) -> int:
        r, keys = self.ctx.redis, self.ctx.keys
        lock = keys.alert_lock(alert_id)
        hold = int(self.ctx.settings.alert_timeout_seconds * 1000) + 5_000
        if not r.set(lock, self.name, nx=True, px=hold):
            return 0  # another courier is posting it
        try:
            alert = self.alerts.get(alert_id)
            if alert is None or alert["delivery"]["state"] != PENDING:
                r.xack(keys.alerts_outbox, GROUP, stream_id)
                return 0
            if alert["delivery"].get("next_attempt_at", 0) > now * 1000:
                return 0
            self._attempt(alert, now)
            if alert["delivery"]["state"] != PENDING:
                r.xack(keys.alerts_outbox, GROUP, stream_id)
            return 1
        finally:
            if r.get(lock) in (self.name, self.name.encode()):
                r.delete(lock)

    def _attempt(self, alert: dict[str, Any], now: float) -> None:
        body = payload(alert)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self.secret),
            "Idempotency-Key": alert["id"],
            "User-Agent": "wa-billing-alerts",
        }
        error = None
        try:
            reply = self.session.post(
                self.url,
                data=body,
                headers=headers,
                timeout=self.ctx.settings.alert_timeout_seconds,
                allow_redirects=False,
            )
            if not 200 <= reply.status_code < 300:
                error = f"HTTP {reply.status_code}"
        except requests.RequestException as exc:
            error = exc.__class__.__name__  # never the URL (it may hold a token)
        self._note(alert, error, now)

    def _note(self, alert: dict[str, Any], error: str | None, now: float) -> None:
        delivery = alert["delivery"]
        delivery["attempts"] += 1
        delivery["last_attempt_at"] = int(now * 1000)
        delivery["last_error"] = error
        stats = self.ctx.keys.stats
        if error is None:
            delivery["state"] = SENT
            delivery["delivered_at"] = int(now * 1000)
            self.ctx.redis.hincrby(stats, "alerts_sent", 1)
            log.info("alert %s delivered (attempt %d)", alert["id"], delivery["attempts"])
        elif delivery["attempts"] >= self.ctx.settings.alert_max_attempts:
            delivery["state"] = FAILED
            self.ctx.redis.hincrby(stats, "alerts_failed", 1)
            log.error("alert %s failed after %d attempts (%s)",
                      alert["id"], delivery["attempts"], error)  # fmt: skip
        else:
            wait = backoff(delivery["attempts"], self.ctx.settings.alert_retry_seconds)
            ended = max(now, time.time())  # back off from the end of the attempt
            delivery["next_attempt_at"] = int((ended + wait) * 1000)
            log.warning("alert %s: attempt %d failed (%s), next in %.1fs",
                        alert["id"], delivery["attempts"], error, wait)  # fmt: skip
        self.alerts.save(alert)


class CourierThread(threading.Thread):
    """Runs :meth:`Courier.tick` every ``interval`` seconds until stopped."""

    def __init__(self, ctx: Context, name: str, interval: float = 1.0) -> None:
        super().__init__(name="wa-billing-courier", daemon=True)
        self.courier, self.interval = Courier(ctx, name), interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.courier.tick()
            except redis.RedisError as exc:
                log.warning("courier: Redis unavailable (%s)", exc.__class__.__name__)

    def stop(self) -> None:
        self.stopping.set()

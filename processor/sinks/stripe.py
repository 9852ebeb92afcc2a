"""Stripe meter events: ``POST {STRIPE_API_BASE}/v1/billing/meter_events``, form-encoded.

One event per request (the v1 endpoint takes one), ``Authorization: Bearer $STRIPE_API_KEY``,
paced to ``STRIPE_MAX_REQUESTS_PER_SECOND`` (25 by default, within test mode's limit; live mode
allows 1,000 per second). Fields: ``event_name`` = ``STRIPE_METER_EVENT_NAME``, ``identifier``
= the version's key (``<record_id>:<version>``, ``:reversal`` for a reversal; also sent as the
``Idempotency-Key`` header), ``timestamp`` = the charge time (Unix seconds), ``payload[
stripe_customer_id]`` from ``sinks.csv``, ``payload[value]`` = the signed billed cost (a
decimal string; use a ``sum`` meter). Stripe answers ``400`` for an identifier it already holds
("An event already exists with identifier ..."): that event counts as delivered. Stripe takes
timestamps from 35 days in the past to 5 minutes in the future: an event outside is parked
without a call (and Stripe enforces identifiers only for about 24 hours: do not replay parked
versions of a record after a day if an earlier event of that version was accepted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from processor.core.deltas import Event, money
from processor.sinks.base import Http, reason
from processor.sinks.deltasink import DeltaSink
from processor.sinks.lago import unix
from processor.sinks.mapping import AccountBook
from processor.store.sinkstate import SentStore

MAX_AGE = 35 * 86_400
MAX_AHEAD = 300
DUPLICATE = "already exists with identifier"


def form(event: Event, event_name: str) -> dict[str, str]:
    return {
        "event_name": event_name,
        "identifier": event.key,
        "timestamp": str(unix(event.time)),
        "payload[stripe_customer_id]": str(event.dims["account"]),
        "payload[value]": money(event.amounts.billed_cost),
    }


class StripeSink(DeltaSink):
    name = "stripe"
    max_batch = 100

    def __init__(
        self, store: SentStore, accounts: AccountBook, base: str, api_key: str,
        event_name: str, rate: float, timeout: float, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        super().__init__(store, accounts)
        self.http = Http(timeout, rate, {"Authorization": f"Bearer {api_key}"})
        self.url, self.event_name, self.clock = f"{base}/v1/billing/meter_events", event_name, clock

    def account(self, waba_id: str) -> str | None:
        return self.accounts.current().stripe.get(waba_id)

    def missing_account(self, waba_id: str) -> str:
        return f"WABA {waba_id} has no stripe_customer_id in sinks.csv"

    def check(self, event: Event) -> str | None:
        at, now = unix(event.time), self.clock()
        if at < now - MAX_AGE:
            return f"event {event.key} at {event.time} is older than Stripe's 35 days"
        if at > now + MAX_AHEAD:
            return f"event {event.key} at {event.time} is more than 5 minutes ahead"
        return None

    def send(self, events: Sequence[Event]) -> dict[int, str]:
        refused = {}
        for position, event in enumerate(events):
            headers = {"Idempotency-Key": event.key}
            response = self.http.post(self.url, data=form(event, self.event_name), headers=headers)
            if response.ok or (response.status_code == 400 and DUPLICATE in response.text):
                continue
            refused[position] = "Stripe " + reason(response)
        return refused

    def close(self) -> None:
        self.http.close()

"""Lago: usage events to ``POST {LAGO_API_URL}/api/v1/events/batch``.

At most 100 events per request (Lago's batch limit), ``Authorization: Bearer $LAGO_API_KEY``,
paced to 50 requests per second (Lago's default event-ingestion limit is 500 per second per
organisation; ``429`` is backed off). Each event: ``transaction_id`` = the version's key
(``<record_id>:<version>``, ``:reversal`` for a reversal), ``external_subscription_id`` from
``sinks.csv``, ``code`` = ``LAGO_METRIC_CODE``, ``timestamp`` = the charge time (Unix seconds),
``properties`` = the grouping and the signed amounts (decimal strings; bill on a ``sum``
metric of ``cost`` or ``billed_cost``).

Lago answers ``422`` with ``error_details`` per event position when events are invalid; an event
whose only error is ``transaction_id: value_already_exist`` is already stored (a retry): it
counts as delivered. Others are parked with Lago's errors, and the valid rest is sent again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import requests

from processor.core.deltas import Event, money
from processor.sinks.base import Http, Transient, dumps, reason
from processor.sinks.deltasink import DeltaSink
from processor.sinks.mapping import AccountBook
from processor.store.sinkstate import SentStore

MAX_EVENTS = 100
RATE = 50.0
DUPLICATE = {"transaction_id": ["value_already_exist"]}


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def lago_event(event: Event, subscription: str, code: str) -> dict[str, Any]:
    d = event.dims
    return {
        "transaction_id": event.key,
        "external_subscription_id": subscription,
        "code": code,
        "timestamp": unix(event.time),
        "properties": {
            "waba_id": event.waba_id, "record_id": event.record_id,
            "version": str(event.version), "reversal": str(event.reversal).lower(),
            "billing_month": d["billing_month"], "category": d["category"],
            "market": d["market"], "billable": str(d["billable"]).lower(),
            "free_reason": d["free_reason"] or "", "currency": d["currency"],
            "units": str(event.amounts.units), "cost": money(event.amounts.cost),
            "billed_cost": money(event.amounts.billed_cost),
            "minutes": money(event.amounts.minutes),
        },
    }  # fmt: skip


class LagoSink(DeltaSink):
    name = "lago"
    max_batch = MAX_EVENTS

    def __init__(
        self, store: SentStore, accounts: AccountBook, url: str, api_key: str, code: str,
        timeout: float,
    ) -> None:  # fmt: skip
        super().__init__(store, accounts)
        self.http = Http(timeout, RATE, {"Authorization": f"Bearer {api_key}"})
        self.url, self.code = f"{url}/api/v1/events/batch", code

    def account(self, waba_id: str) -> str | None:
        return self.accounts.current().lago.get(waba_id)

    def missing_account(self, waba_id: str) -> str:
        return f"WABA {waba_id} has no lago_external_subscription_id in sinks.csv"

    def send(self, events: Sequence[Event]) -> dict[int, str]:
        refused: dict[int, str] = {}
        for start in range(0, len(events), MAX_EVENTS):
            chunk = events[start : start + MAX_EVENTS]
            for position, why in self._send_chunk(chunk).items():
                refused[start + position] = why
        return refused

    def _send_chunk(self, chunk: Sequence[Event]) -> dict[int, str]:
        body = [lago_event(e, e.dims["account"], self.code) for e in chunk]
        waiting, refused = list(range(len(chunk))), dict[int, str]()
        while waiting:
            response = self._post([body[i] for i in waiting])
            if response.ok:
                return refused
            if response.status_code != 422:
                if len(waiting) == 1:  # refused, not for one of Lago's per-event reasons
                    refused[waiting[0]] = reason(response)
                    return refused
                raise Transient(f"Lago answered {reason(response)} for a batch")
            details = _details(response)
            settled = set()
            for position, errors in details.items():
                if position >= len(waiting):
                    continue
                settled.add(position)
                if errors != DUPLICATE:
                    refused[waiting[position]] = "Lago 422: " + json.dumps(errors)[:400]
            if not settled:  # no positions given: find the refused events one by one
                if len(waiting) == 1:
                    refused[waiting[0]] = "Lago " + reason(response)
                    return refused
                for w in waiting:
                    for why in self._send_chunk([chunk[w]]).values():
                        refused[w] = why
                return refused
            waiting = [w for i, w in enumerate(waiting) if i not in settled]
        return refused

    def _post(self, events: list[dict[str, Any]]) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        return self.http.post(self.url, data=dumps({"events": events}), headers=headers)

    def close(self) -> None:
        self.http.close()


def _details(response: requests.Response) -> dict[int, Any]:
    """Lago's ``error_details`` by event position (``{"0": {...}}``); a bare duplicate answer
    (``{"transaction_id": ["value_already_exist"]}``) is position 0; else none known."""
    try:
        doc = response.json()
    except ValueError:
        return {}
    details = doc.get("error_details") if isinstance(doc, dict) else None
    if not isinstance(details, dict):
        return {}
    if details and all(str(k).isdigit() for k in details):
        return {int(k): v for k, v in details.items()}
    if details == DUPLICATE:
        return {0: details}
    return {}

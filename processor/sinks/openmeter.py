"""OpenMeter: CloudEvents to ``POST {OPENMETER_URL}/api/v1/events``.

A batch is one ``application/cloudevents-batch+json`` request of at most 100 events, with
``Authorization: Bearer $OPENMETER_API_KEY`` when a key is set (OpenMeter Cloud; a self-hosted
OpenMeter may need none). OpenMeter answers ``204`` and deduplicates events by ``id`` and
``source``: ``id`` is the version's key (``<record_id>:<version>``, ``:reversal`` for the
reversal of what was sent before), ``source`` is ``wa-billing``, ``subject`` the WABA, ``time``
the charge time, ``data`` the grouping and the signed amounts (decimal strings). A ``400`` for a
batch is narrowed down to the events it refuses (halves are sent again), which are parked.
OpenMeter Cloud limits requests per plan (``429``, backed off); the sink paces itself to 50
requests per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.core.deltas import Event, money
from processor.sinks.base import Http, dumps, reason, split_rejects
from processor.sinks.deltasink import DeltaSink
from processor.sinks.mapping import AccountBook
from processor.store.sinkstate import SentStore

SOURCE = "wa-billing"
MAX_EVENTS = 100
RATE = 50.0


def cloud_event(event: Event, event_type: str) -> dict[str, Any]:
    d = event.dims
    return {
        "specversion": "1.0",
        "id": event.key,
        "source": SOURCE,
        "type": event_type,
        "subject": event.waba_id,
        "time": event.time,
        "datacontenttype": "application/json",
        "data": {
            "record_id": event.record_id, "version": event.version, "reversal": event.reversal,
            "billing_month": d["billing_month"], "category": d["category"],
            "market": d["market"], "billable": d["billable"], "free_reason": d["free_reason"],
            "currency": d["currency"], "units": event.amounts.units,
            "cost": money(event.amounts.cost), "billed_cost": money(event.amounts.billed_cost),
            "minutes": money(event.amounts.minutes),
        },
    }  # fmt: skip


class OpenMeterSink(DeltaSink):
    name = "openmeter"
    max_batch = MAX_EVENTS

    def __init__(
        self, store: SentStore, accounts: AccountBook, url: str, api_key: str,
        event_type: str, timeout: float,
    ) -> None:  # fmt: skip
        super().__init__(store, accounts)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = Http(timeout, RATE, headers)
        self.url, self.event_type = f"{url}/api/v1/events", event_type

    def account(self, waba_id: str) -> str | None:
        return waba_id  # the subject is the WABA

    def send(self, events: Sequence[Event]) -> dict[int, str]:
        refused: dict[int, str] = {}
        for start in range(0, len(events), MAX_EVENTS):
            chunk = [cloud_event(e, self.event_type) for e in events[start : start + MAX_EVENTS]]
            for position, why in split_rejects(chunk, self._post).items():
                refused[start + position] = why
        return refused

    def _post(self, chunk: Sequence[dict[str, Any]]) -> str | None:
        headers = {"Content-Type": "application/cloudevents-batch+json"}
        response = self.http.post(self.url, data=dumps(list(chunk)), headers=headers)
        return None if response.ok else reason(response)

    def close(self) -> None:
        self.http.close()

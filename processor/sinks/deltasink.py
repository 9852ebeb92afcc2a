"""The common part of the summing targets (OpenMeter, Lago, Stripe): corrections as deltas.

For each version the sink plans the events (processor/core/deltas.py) against what it sent for
the record before, sends them, and only then records the new state; a version whose events the
target rejected changes nothing (its reason is parked). A batch that holds several versions of
one record is sent in rounds (one version of a record per round), each planned against the
state the previous round left. Event keys depend only on the record id and version, so a batch
retried after a crash plans and sends the same events, which the target deduplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from processor.core.deltas import Event, Sent, plan
from processor.errors import SettingsError
from processor.sinks.base import Outcome, Sink, Transient, Version
from processor.sinks.mapping import AccountBook
from processor.store.sinkstate import SentStore


@dataclass
class _Planned:
    version: Version
    events: list[Event]
    before: Sent | None
    after: Sent


class DeltaSink(Sink):
    """Subclasses give ``account`` (whom a WABA is billed to) and ``send`` (one request or
    several; returns position -> reason for the events the target rejected for good)."""

    def __init__(self, store: SentStore, accounts: AccountBook) -> None:
        self.store, self.accounts = store, accounts

    def account(self, waba_id: str) -> str | None:
        raise NotImplementedError

    def missing_account(self, waba_id: str) -> str:
        return f"no account for WABA {waba_id}"

    def check(self, event: Event) -> str | None:
        """A reason the target would refuse ``event`` for good, known before sending."""
        return None

    def send(self, events: Sequence[Event]) -> dict[int, str]:
        raise NotImplementedError

    def deliver(self, versions: Sequence[Version]) -> Outcome:
        outcome = Outcome()
        for batch in rounds(versions):
            self._round(batch, outcome)
        return outcome

    def _round(self, versions: list[Version], outcome: Outcome) -> None:
        wanted = [(str(v.record["record_id"]), str(v.record["billing_month"])) for v in versions]
        states = self.store.load(wanted)
        planned: list[_Planned] = []
        for version in versions:
            item = self._plan(version, states, outcome)
            if item is not None:
                planned.append(item)
        events = [e for p in planned for e in p.events]
        refused = self.send(events) if events else {}
        changes: dict[str, tuple[Sent | None, Sent]] = {}
        position = 0
        for p in planned:
            span = range(position, position + len(p.events))
            reasons = [refused[i] for i in span if i in refused]
            position += len(p.events)
            if reasons:
                outcome.reject(p.version, "; ".join(reasons))
            elif p.after is not p.before:
                changes[str(p.version.record["record_id"])] = (p.before, p.after)
        self.store.save(changes)

    def _plan(self, version: Version, states: dict[str, Sent], outcome: Outcome) -> _Planned | None:
        record = version.record
        try:
            account = self.account(str(record["waba_id"]))
        except SettingsError as exc:
            raise Transient(f"sinks.csv: {exc}") from None
        if account is None:
            outcome.reject(version, self.missing_account(str(record["waba_id"])))
            return None
        before = states.get(str(record["record_id"]))
        events, after = plan(record, account, before)
        for event in events:
            why = self.check(event)
            if why is not None:
                outcome.reject(version, why)
                return None
        return _Planned(version, events, before, after)


def rounds(versions: Sequence[Version]) -> list[list[Version]]:
    """Split a batch so that no round holds two versions of one record; order is kept."""
    seen: Counter[str] = Counter()
    out: list[list[Version]] = []
    for version in versions:
        rid = str(version.record["record_id"])
        n = seen[rid]
        seen[rid] += 1
        while len(out) <= n:
            out.append([])
        out[n].append(version)
    return out

"""The ledger: applies events to Redis, in pipelined batches of atomic scripts.

For each event: read the pair's history, merge the event, re-evaluate the pair (pure), and send
one apply-script call that claims the event, checks the pair version it was decided on, and
books the units that changed. All calls of a batch go in one pipeline; an event whose pair was
changed meanwhile by another worker (a version conflict) is decided again on fresh state.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from processor.core.events import Event, Pair, Status
from processor.core.history import PairHistory
from processor.core.model import Evaluation, evaluate, trim
from processor.core.policies import PolicyBook
from processor.core.rating import RateBook
from processor.store.keys import Keys
from processor.store.ops import OpBuilder, Retention

log = logging.getLogger(__name__)
DAY = 86_400
MAX_ROUNDS = 20
DUPLICATE, CONFLICT, APPLIED = 0, 1, 2


@dataclass(frozen=True)
class LedgerConfig:
    dedup_ttl: int
    pair_horizon: int
    unit_ttl: int
    records_retention: int
    feed_maxlen: int


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    records: int = 0
    conflicts: int = 0
    rejected: list[tuple[Event, str]] = field(default_factory=list)

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.records += other.records
        self.conflicts += other.conflicts
        self.rejected.extend(other.rejected)


@dataclass
class _Call:
    event: Event
    keys: list[str]
    args: list[Any]


class Ledger:
    def __init__(
        self, client: redis.Redis, keys: Keys, ratebook: RateBook, config: LedgerConfig
    ) -> None:
        self.redis, self.keys, self.ratebook, self.config = client, keys, ratebook, config
        self.book = PolicyBook()
        keep = Retention(config.unit_ttl, config.pair_horizon, config.records_retention)
        self.ops = OpBuilder(keys, ratebook, self.book, keep)
        source = resources.files("processor.store").joinpath("lua/apply.lua").read_text()
        self.script = client.register_script(source)

    # -- applying ------------------------------------------------------------------------------

    def apply(self, events: list[Event]) -> ApplyResult:
        """Apply ``events`` (in this order per pair); safe to call again with the same events."""
        result = ApplyResult()
        todo = list(events)
        for _ in range(MAX_ROUNDS):
            if not todo:
                return result
            todo = self._round(todo, result)
        raise RuntimeError(f"{len(todo)} events still conflicting after {MAX_ROUNDS} rounds")

    def _round(self, events: list[Event], result: ApplyResult) -> list[Event]:
        by_pair: dict[Pair, list[Event]] = defaultdict(list)
        for event in events:
            by_pair[event.pair].append(event)
        pairs = list(by_pair)
        histories = self._read(pairs)
        calls: list[_Call] = []
        for pair in pairs:
            calls.extend(self._decide_pair(pair, histories[pair], by_pair[pair], result))
        return self._run(calls, result)

    def _read(self, pairs: list[Pair]) -> dict[Pair, PairHistory]:
        pipe = self.redis.pipeline(transaction=False)
        for pair in pairs:
            pipe.hmget(self.keys.pair(pair), "v", "h")
        return {
            pair: PairHistory.loads(blob, version.decode() if version else "")
            for pair, (version, blob) in zip(pairs, pipe.execute(), strict=True)
        }

    def _decide_pair(
        self, pair: Pair, history: PairHistory, events: list[Event], result: ApplyResult
    ) -> list[_Call]:
        calls = []
        for event in events:
            try:
                call = self._decide(pair, history, event)
            except Exception as exc:  # a bug must not stop the other events: quarantine
                log.exception("deciding event %s failed", _ident(event))
                result.rejected.append((event, f"internal error: {exc.__class__.__name__}"))
                continue
            if isinstance(call, str):
                result.rejected.append((event, call))
            elif call is None:
                result.duplicates += 1
            else:
                calls.append(call)
        return calls

    def _decide(self, pair: Pair, history: PairHistory, event: Event) -> _Call | str | None:
        settled = isinstance(event, Status) and history.is_settled(event.wamid)
        if event.timestamp < history.floor and not settled:
            return "older than the pair's history horizon (PAIR_HORIZON_DAYS)"
        version = history.version
        if not history.merge(event):
            return None
        tz = self.ratebook.waba(pair.waba_id).timezone
        newest = history.newest()
        if newest - history.oldest() > self.config.pair_horizon + DAY:
            trim(pair, history, newest - self.config.pair_horizon, tz, self.book)
        evaluation = evaluate(pair, history, tz, self.book)
        unit_ops = self._unit_ops(pair, history, evaluation)
        history.pending, pending_ops = self.ops.pending_ops(
            pair, history.pending, evaluation.pending
        )
        history.version = secrets.token_hex(8)
        cfg = self.config
        args: list[Any] = [
            version,
            history.version,
            history.dumps(),
            cfg.dedup_ttl,
            cfg.pair_horizon,
            cfg.feed_maxlen,
            self.keys.unit_prefix,
            len(unit_ops),
            *unit_ops,
            *pending_ops,
        ]
        keys = [self.keys.claim(event.claim_id), self.keys.pair(pair), self.keys.feed]
        return _Call(event, keys, args)

    def _unit_ops(self, pair: Pair, history: PairHistory, evaluation: Evaluation) -> list[str]:
        ops = []
        now = {}
        for unit in evaluation.units:
            signature = unit.signature()
            now[unit.record_id] = [signature, unit.charge_time]
            if history.units.get(unit.record_id, [None])[0] != signature:
                ops.append(self.ops.put(pair, unit))
        ops.extend(self.ops.void(rid) for rid in history.units.keys() - now.keys())
        history.units = now
        return ops

    def _run(self, calls: list[_Call], result: ApplyResult) -> list[Event]:
        if not calls:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            self.script(keys=call.keys, args=call.args, client=pipe)
        retry: list[Event] = []
        conflicted: set[Pair] = set()
        for call, reply in zip(calls, pipe.execute(), strict=True):
            code = int(reply[0])
            if call.event.pair in conflicted or code == CONFLICT:
                conflicted.add(call.event.pair)
                if code != DUPLICATE:
                    retry.append(call.event)
                    result.conflicts += code == CONFLICT
                else:
                    result.duplicates += 1
            elif code == DUPLICATE:
                result.duplicates += 1
            else:
                result.applied += 1
                result.records += int(reply[1])
        return retry


def _ident(event: Event) -> str:
    return f"{event.__class__.__name__}({event.pair.phone_number_id}, {event.wamid})"

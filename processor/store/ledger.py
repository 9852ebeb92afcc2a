"""The ledger: applies events to Redis, in pipelined batches of atomic scripts.

For each pair of a batch: read its history, merge the batch's events, re-evaluate the pair once
(pure), and send one apply-script call that claims the new events, checks the pair version it
was decided on, and books the units that changed. All calls of a batch go in one pipeline; a
pair changed meanwhile by another worker (a version conflict) is decided again on fresh state.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import traceback
from collections import defaultdict
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

import redis

from processor.core.events import Event, Pair, Status
from processor.core.history import PairHistory
from processor.core.model import Evaluation, Unit, evaluate, trim
from processor.core.policies import PolicyBook
from processor.core.rating import RateBook
from processor.store.keys import Keys
from processor.store.ops import OpBuilder

log = logging.getLogger(__name__)
DAY = 86_400
MAX_ROUNDS = 20
DUPLICATE, CONFLICT, APPLIED = 0, 1, 2
TOO_LATE = "older than the pair's history horizon (PAIR_HORIZON_DAYS)"
UNIT_FIELDS = tuple(f.name for f in fields(Unit))
SCRIPT = resources.files("processor.store").joinpath("lua/apply.lua")
PRICING = resources.files("processor.store").joinpath("lua/pricing.lua")


@dataclass(frozen=True)
class LedgerConfig:
    dedup_ttl: int
    pair_horizon: int
    records_retention: int
    feed_maxlen: int

    @property
    def bucket_ttl(self) -> int:
        """Buckets live while late events for their month can still come."""
        return 32 * DAY + self.pair_horizon


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0  # redeliveries
    unchanged: int = 0  # new, but adding nothing the rules read (a read after delivered...)
    records: int = 0
    conflicts: int = 0
    rejected: list[tuple[Event, str]] = field(default_factory=list)

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.unchanged += other.unchanged
        self.records += other.records
        self.conflicts += other.conflicts
        self.rejected.extend(other.rejected)


@dataclass
class _Call:
    events: list[Event]  # the new events it claims (all of one pair)
    keys: list[str]
    args: list[Any]


class Ledger:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        ratebook: RateBook,
        config: LedgerConfig,
        book: PolicyBook | None = None,
    ) -> None:
        self.redis, self.keys, self.ratebook, self.config = client, keys, ratebook, config
        self.book = book or PolicyBook()
        self.ops = OpBuilder(keys, ratebook, self.book)
        self.source = PRICING.read_text() + "\n" + SCRIPT.read_text()
        self.sha = ""
        self.may_trim = True

    # -- applying ------------------------------------------------------------------------------

    def apply(self, events: list[Event], may_trim: bool = True) -> ApplyResult:
        """Apply ``events`` (in this order per pair); safe to call again with the same events.

        ``may_trim=False`` keeps every pair's history whole (its floor where it is): the caller
        knows older events are still on their way (another worker holds older bodies)."""
        self.may_trim = may_trim
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
        stored = self._read(pairs)
        calls: list[_Call] = []
        for pair in pairs:
            calls.extend(self._decide_pair(pair, stored[pair], by_pair[pair], result))
        return self._run(calls, result)

    def _read(self, pairs: list[Pair]) -> dict[Pair, tuple[bytes | None, str]]:
        """Each pair's stored (history JSON, version): ``PairHistory.loads``'s arguments."""
        pipe = self.redis.pipeline(transaction=False)
        for pair in pairs:
            pipe.hmget(self.keys.pair(pair), "v", "h")
        return {
            pair: (blob, version.decode() if version else "")
            for pair, (version, blob) in zip(pairs, pipe.execute(), strict=True)
        }

    def _decide_pair(
        self,
        pair: Pair,
        stored: tuple[bytes | None, str],
        events: list[Event],
        result: ApplyResult,
    ) -> list[_Call]:
        """One call for all of ``events`` of the pair; one per event only if deciding fails."""
        attempt = ApplyResult()
        try:
            calls = self._decide(pair, PairHistory.loads(*stored), events, attempt)
        except Exception:
            if len(events) == 1:
                self._reject_failed(events[0], result)
                return []
        else:
            result.add(attempt)
            return calls
        calls = []  # find the event that breaks the rules: decide them one by one
        history = PairHistory.loads(*stored)
        for event in events:
            before = history.copy()
            try:
                calls.extend(self._decide(pair, history, [event], result))
            except Exception:
                self._reject_failed(event, result)
                history = before
        return calls  # each expects the version the previous one writes

    def _reject_failed(self, event: Event, result: ApplyResult) -> None:
        """A bug must not stop the other events: log it (ids only) and quarantine the event."""
        exc = sys.exc_info()[1]
        assert exc is not None
        # the traceback without the exception's message, which may quote user data
        trace = "".join(traceback.format_tb(exc.__traceback__))
        log.error("deciding event %s failed: %s\n%s", _ident(event), _kind(exc), trace)
        result.rejected.append((event, f"internal error: {exc.__class__.__name__}"))

    def _decide(
        self, pair: Pair, history: PairHistory, events: list[Event], result: ApplyResult
    ) -> list[_Call]:
        """Merge ``events``, evaluate the pair once, and build the call that applies them."""
        new: list[Event] = []
        for event in events:
            settled = isinstance(event, Status) and history.is_settled(event.wamid)
            if event.timestamp < history.floor and not settled:
                result.rejected.append((event, TOO_LATE))
                continue
            changed = _merge(history, event)
            if changed is None:
                result.duplicates += 1
            elif not changed:
                result.unchanged += 1
            else:
                new.append(event)
        if not new:
            return []
        tz = self.ratebook.waba(pair.waba_id).timezone
        evaluation = evaluate(pair, history, tz, self.book)
        unit_ops = self._unit_ops(pair, history, evaluation)
        newest = history.newest()
        if self.may_trim and newest - history.oldest() > self.config.pair_horizon + DAY:
            # only after every event of the batch was evaluated and its units booked
            trim(pair, history, newest - self.config.pair_horizon, tz, self.book)
        history.pending, pending_ops = self.ops.pending_ops(
            pair, history.pending, evaluation.pending, history.floor
        )
        expected, history.version = history.version, secrets.token_hex(8)
        cfg, keys = self.config, self.keys
        args: list[Any] = [
            expected,
            history.version,
            history.dumps(),
            cfg.dedup_ttl,
            cfg.pair_horizon,
            cfg.feed_maxlen,
            keys.records_prefix,
            keys.usage_prefix,
            cfg.bucket_ttl,
            "[" + ",".join(unit_ops) + "]",
            "[" + ",".join(pending_ops) + "]",
            cfg.records_retention,
        ]
        claims = (keys.claim(e.claim_id) for e in new)
        return [_Call(new, [keys.pair(pair), keys.feed, keys.months, *claims], args)]

    def _unit_ops(self, pair: Pair, history: PairHistory, evaluation: Evaluation) -> list[str]:
        ops = []
        now: dict[str, list[Any]] = {}
        for unit in evaluation.units:
            signature = _signature(unit)
            stored = history.units.get(unit.record_id)
            if stored is not None and stored[0] == signature:
                now[unit.record_id] = stored
                continue
            op, month = self.ops.put(pair, unit, stored[2] if stored else None)
            ops.append(op)
            now[unit.record_id] = [signature, unit.charge_time, month]
        for rid in history.units.keys() - now.keys():
            ops.append(self.ops.void(pair, rid, history.units[rid][2]))
        history.units = now
        return ops

    def _run(self, calls: list[_Call], result: ApplyResult) -> list[Event]:
        if not calls:
            return []
        if not self.sha:
            self.sha = self.redis.script_load(self.source)
        pipe = self.redis.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(self.sha, len(call.keys), *call.keys, *call.args)
        pairs = {c.events[0].pair for c in calls}
        pipe.hset(self.keys.phones, mapping={p.phone_number_id: p.waba_id for p in pairs})
        replies = pipe.execute(raise_on_error=False)
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
            self.sha = ""  # Redis restarted or flushed its scripts: decide again, load again
            return [e for c in calls for e in c.events]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return self._outcomes(calls, replies, result)

    def _outcomes(self, calls: list[_Call], replies: list[Any], result: ApplyResult) -> list[Event]:
        retry: list[Event] = []
        for call, reply in zip(calls, replies, strict=False):
            code = int(reply[0])
            if code == APPLIED:
                result.applied += len(call.events)
                result.records += int(reply[1])
            elif code == CONFLICT:  # another worker changed the pair: decide again
                result.conflicts += len(call.events)
                retry.extend(call.events)
            else:  # claims already taken: those events were applied before
                taken = {int(i) for i in reply[1:]}
                result.duplicates += len(taken)
                retry.extend(e for i, e in enumerate(call.events) if i not in taken)
        return retry


def _merge(history: PairHistory, event: Event) -> bool | None:
    """Merge ``event``: True if it changed the history; None for a redelivery; False for a
    new status that can never matter (a ``read`` after a priced ``delivered``...)."""
    if isinstance(event, Status) and history.dominated(event):
        return False
    return True if history.merge(event) else None


def _signature(unit: Unit) -> str:
    """A short digest of everything that makes up a unit (a change means a new version)."""
    text = "\x1f".join([str(getattr(unit, name)) for name in UNIT_FIELDS])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _kind(exc: BaseException) -> str:
    return f"{exc.__class__.__module__}.{exc.__class__.__name__}"


def _ident(event: Event) -> str:
    return f"{event.__class__.__name__}({event.pair.phone_number_id}, {event.wamid})"

"""The ledger: applies events to Redis, in pipelined batches of atomic scripts.

For each pair of a batch: read its history, decide (``processor.core.decide``: merge the
batch's events, re-evaluate the pair once, compare its units with those booked), encode the
units that changed into apply-script operations, and send one call that claims the new
events, checks the pair version it was decided on, and books the units. All calls of a batch
go in one pipeline per Redis node; a pair changed meanwhile by another worker (a version
conflict) is decided again on fresh state, and calls that meet a moving store (failover,
moved slot, dropped connection) are sent again, their claims making that safe.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from processor.core import fastjson
from processor.core.call_units import trim_calls
from processor.core.decide import Decision, decide
from processor.core.events import Event, Pair
from processor.core.history import PairHistory
from processor.core.model import trim
from processor.core.policies import PolicyBook
from processor.core.rating import RateBook
from processor.errors import StoreUnavailable
from processor.store.cluster import TRANSIENT, Router
from processor.store.keys import Keys
from processor.store.ops import OpBuilder

log = logging.getLogger(__name__)
DAY = 86_400
MAX_ROUNDS = 20
DUPLICATE, CONFLICT, APPLIED = 0, 1, 2
SCRIPT = resources.files("processor.store").joinpath("lua/apply.lua")
PRICING = resources.files("processor.store").joinpath("lua/pricing.lua")
CALLS = resources.files("processor.store").joinpath("lua/calls.lua")


@dataclass(frozen=True)
class LedgerConfig:
    dedup_ttl: int
    pair_horizon: int
    records_retention: int
    feed_maxlen: int
    wait_replicas: int = 0  # WAIT for this many replicas after each node's batch (cluster)
    wait_ms: int = 200
    retry_seconds: float = 30.0  # how long a moving store (failover, moved slots) is retried

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
class Call:
    """One apply-script call: the new events of one pair it claims, its KEYS and ARGV."""

    events: list[Event]  # the new events it claims (all of one pair)
    keys: list[str]
    args: list[Any]


@dataclass
class _Touch:
    """What one call's operations may touch besides its pair and claims."""

    months: set[tuple[str, str]] = field(default_factory=set)  # (waba_id, month)
    buckets: set[str] = field(default_factory=set)
    wide: bool = False  # a shared bucket: units of every WABA of the portfolio may move
    legacy: bool = False  # a unit booked before its bucket was kept in the history

    def unit(self, waba_id: str, month: str, bucket: str, shared: bool) -> None:
        self.months.add((waba_id, month))
        if bucket:
            self.buckets.add(bucket)
            self.wide = self.wide or shared


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
        self.source = "\n".join(p.read_text() for p in (PRICING, CALLS, SCRIPT))
        self.sha = ""
        self.may_trim = True
        self.router = Router(client)
        self._registered: set[str] = set()  # tags known to be in the registry (cluster)
        self._portfolio: dict[str, tuple[str, ...]] = {}

    # -- applying ------------------------------------------------------------------------------

    def apply(self, events: list[Event], may_trim: bool = True) -> ApplyResult:
        """Apply ``events`` (in this order per pair); safe to call again with the same events.

        ``may_trim=False`` keeps every pair's history whole (its floor where it is): the caller
        knows older events are still on their way (another worker holds older bodies)."""
        self.may_trim = may_trim
        result = ApplyResult()
        todo, rounds, outage_since, pause = list(events), 0, 0.0, 0.05
        while todo:
            errors: list[Exception] = []
            todo = self._round(todo, result, errors)
            if not errors:
                rounds, outage_since, pause = rounds + 1, 0.0, 0.05
                if todo and rounds >= MAX_ROUNDS:
                    left = len(todo)
                    raise RuntimeError(f"{left} events still conflicting after {rounds} rounds")
                continue
            if not self.router.cluster:  # one Redis: fail the job now, as always
                raise errors[0]
            outage_since = outage_since or time.monotonic()
            if time.monotonic() - outage_since > self.config.retry_seconds:
                raise StoreUnavailable(f"the ledger's Redis kept failing: {errors[0]!r}")
            log.warning("ledger store moving (%s); trying again", _kind(errors[0]))
            time.sleep(pause)  # a failover takes seconds; the calls are safe to send again
            pause = min(pause * 2, 1.0)
            self.router.refresh()
        return result

    def _round(
        self, events: list[Event], result: ApplyResult, errors: list[Exception]
    ) -> list[Event]:
        by_pair: dict[Pair, list[Event]] = defaultdict(list)
        for event in events:
            by_pair[event.pair].append(event)
        pairs = list(by_pair)
        try:
            self._register(pairs)
            stored = self._read(pairs)
        except TRANSIENT as exc:
            errors.append(exc)
            return events
        calls: list[Call] = []
        for pair in pairs:
            calls.extend(self._decide_pair(pair, stored[pair], by_pair[pair], result))
        return self.send(calls, result, errors)

    def _register(self, pairs: list[Pair]) -> None:
        """On a cluster: list the pairs' tags in the registry before their first write, and
        record which WABA each phone number belongs to (for quotes), outside the script."""
        if not self.router.cluster:
            return
        tags = {self.keys.tag(p.waba_id) for p in pairs} - self._registered
        if tags:
            self.redis.sadd(self.keys.tags, *sorted(tags))
            self._registered |= tags

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
    ) -> list[Call]:
        """One call for all of ``events`` of the pair; one per event only if deciding fails."""
        attempt = ApplyResult()
        try:
            calls = self.plan(pair, PairHistory.loads(*stored), events, attempt)
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
                calls.extend(self.plan(pair, history, [event], result))
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

    def plan(
        self, pair: Pair, history: PairHistory, events: list[Event], result: ApplyResult
    ) -> list[Call]:
        """Decide (core), encode the units into operations, and build the call that applies
        ``events`` of ``pair``; ``history`` (the pair's stored state) is updated in place, its
        version token included. No I/O: :meth:`send` runs the calls."""
        tz = self.ratebook.waba(pair.waba_id).timezone
        horizon = self.config.pair_horizon
        decision = decide(pair, history, events, tz, self.book, horizon, self.may_trim)
        result.duplicates += decision.duplicates
        result.unchanged += decision.unchanged
        result.rejected.extend(decision.rejected)
        if not decision.new:
            return []
        new, evaluation = decision.new, decision.evaluation
        assert evaluation is not None
        touch = _Touch()
        unit_ops = self._unit_ops(pair, history, decision, touch)
        if decision.trim_to is not None:
            trim(pair, history, decision.trim_to, tz, self.book)
            trim_calls(pair, history, decision.trim_to, tz, self.book)
        history.pending, pending_ops = self.ops.pending_ops(
            pair, history.pending, evaluation.pending, history.floor
        )
        expected, history.version = history.version, secrets.token_hex(8)
        cfg, keys = self.config, self.keys
        data_keys, index = self._data_keys(pair, touch, bool(pending_ops))
        args: list[Any] = [
            expected,
            history.version,
            history.dumps(),
            cfg.dedup_ttl,
            cfg.pair_horizon,
            cfg.feed_maxlen,
            len(new),
            index,
            cfg.bucket_ttl,
            "[" + ",".join(unit_ops) + "]",
            "[" + ",".join(pending_ops) + "]",
            cfg.records_retention,
        ]
        tag = keys.tag(pair.waba_id)
        claims = [keys.claim(e.claim_id, pair.waba_id) for e in new]
        head = [keys.pair(pair), keys.feed_of(tag), keys.months_of(tag)]
        return [Call(new, [*head, *claims, *data_keys], args)]

    def _data_keys(self, pair: Pair, touch: _Touch, pending: bool) -> tuple[list[str], str]:
        """The records, usage, bucket, bounds and pending keys a call may touch, and the
        script's index of them (ARGV[8] of apply.lua)."""
        keys, months = self.keys, touch.months
        if touch.wide or touch.legacy:  # units of every WABA of the portfolio may move
            wabas = self._wabas_in(pair.waba_id)
            months = {(w, m) for _, m in months for w in wabas} | months
        index: dict[str, Any] = {"m": {}, "t": {}}
        out: list[str] = []
        for waba, month in sorted(months):
            pair_keys = [
                keys.records(waba, month),
                keys.usage(waba, month),
                keys.usage_daily(waba, month),
            ]
            index["m"][f"{waba}|{month}"] = pair_keys
            out += pair_keys
        for bucket in sorted(touch.buckets):
            index["t"][bucket] = keys.bounds(bucket)
            out += [bucket, keys.bounds(bucket)]
        if touch.legacy and not self.router.cluster:
            index["legacy"] = True
        if pending:
            out.append(keys.pending(pair.waba_id))
        return out, fastjson.dumps(index)

    def _wabas_in(self, waba_id: str) -> tuple[str, ...]:
        found = self._portfolio.get(waba_id)
        if found is None:
            found = self._portfolio[waba_id] = self.ratebook.wabas_in(waba_id)
        return found

    def _unit_ops(
        self, pair: Pair, history: PairHistory, decision: Decision, touch: _Touch
    ) -> list[str]:
        """The decision's units as apply-script operations; the history's booked units."""
        ops = []
        now = dict(decision.kept)
        for unit, digest, stored in decision.put:
            op, month, bucket = self.ops.put(pair, unit, stored[2] if stored else None)
            ops.append(op)
            touch.unit(pair.waba_id, month, bucket, self.keys.shared_bucket(bucket))
            if stored is not None:
                self._touch_stored(pair, stored, touch)
            now[unit.record_id] = [digest, unit.charge_time, month, bucket]
        for rid, stored in decision.void:
            ops.append(self.ops.void(pair, rid, stored[2]))
            self._touch_stored(pair, stored, touch)
        history.units = now
        return ops

    def _touch_stored(self, pair: Pair, stored: list[Any], touch: _Touch) -> None:
        """The stored version of a unit: its month's keys and its bucket (where it leaves)."""
        if len(stored) < 4:  # booked by a version that did not keep its bucket
            touch.months.add((pair.waba_id, stored[2]))
            touch.legacy = True
            return
        touch.unit(pair.waba_id, stored[2], stored[3], self.keys.shared_bucket(stored[3]))

    def send(
        self, calls: list[Call], result: ApplyResult, errors: list[Exception] | None = None
    ) -> list[Event]:
        """Run ``calls`` (one pipeline per node); the events to decide again (a conflict, a
        moving store: then ``errors`` says why)."""
        if not calls:
            return []
        errors = [] if errors is None else errors
        phones: dict[Any, Any] = {
            c.events[0].pair.phone_number_id: c.events[0].pair.waba_id for c in calls
        }
        try:
            if not self.sha:
                self.sha = self.redis.script_load(self.source)
            if self.router.cluster:  # a key of its own slot: apart from the scripts
                self.redis.hset(self.keys.phones, mapping=phones)
        except TRANSIENT as exc:
            errors.append(exc)
            return [e for c in calls for e in c.events]
        retry: list[Event] = []
        for node, members in self.router.groups([c.keys[0] for c in calls]):
            group = [calls[i] for i in members]
            extra = None if self.router.cluster else phones
            retry += self._run_group(node, group, extra, result, errors)
        return retry

    def _run_group(
        self,
        node: redis.Redis,
        group: list[Call],
        phones: dict[Any, Any] | None,
        result: ApplyResult,
        errors: list[Exception],
    ) -> list[Event]:
        pipe = node.pipeline(transaction=False)
        for call in group:
            pipe.evalsha(self.sha, len(call.keys), *call.keys, *call.args)
        if phones:
            pipe.hset(self.keys.phones, mapping=phones)
        waits = self.router.cluster and self.config.wait_replicas > 0
        if waits:  # on this connection: its writes reach a replica before the batch is acked
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "WAIT", self.config.wait_replicas, self.config.wait_ms
            )
        everything = [e for c in group for e in c.events]
        try:
            replies = pipe.execute(raise_on_error=False)
        except TRANSIENT as exc:
            errors.append(exc)
            return everything
        scripts, rest = replies[: len(group)], replies[len(group) :]
        if any(isinstance(r, redis.exceptions.NoScriptError) for r in scripts):
            node.script_load(self.source)  # restarted, flushed or promoted: decide again
            return everything
        moving = [r for r in scripts if isinstance(r, TRANSIENT)]
        if moving:
            errors.append(moving[0])
            return everything
        for reply in [*scripts, *rest]:
            if isinstance(reply, Exception):
                raise reply
        if waits and int(rest[-1]) < self.config.wait_replicas:
            log.warning("ledger writes not yet on %d replica(s)", self.config.wait_replicas)
        return self._outcomes(group, scripts, result)

    def _outcomes(self, calls: list[Call], replies: list[Any], result: ApplyResult) -> list[Event]:
        retry: list[Event] = []
        for call, reply in zip(calls, replies, strict=False):
            code = int(reply[0])
            if code == APPLIED:
                result.applied += len(call.events)
                result.records += int(reply[1])
                if len(reply) > 2 and int(reply[2]):
                    log.error(
                        "%d units of WABAs no longer in the portfolio of %s were not "
                        "repriced: rerate their month",
                        int(reply[2]),
                        call.keys[0],
                    )
            elif code == CONFLICT:  # another worker changed the pair: decide again
                result.conflicts += len(call.events)
                retry.extend(call.events)
            else:  # claims already taken: those events were applied before
                taken = {int(i) for i in reply[1:]}
                result.duplicates += len(taken)
                retry.extend(e for i, e in enumerate(call.events) if i not in taken)
        return retry


def _kind(exc: BaseException) -> str:
    return f"{exc.__class__.__module__}.{exc.__class__.__name__}"


def _ident(event: Event) -> str:
    return f"{event.__class__.__name__}({event.pair.phone_number_id}, {event.wamid})"

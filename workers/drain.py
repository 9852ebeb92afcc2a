"""The RQ job: drain the webhook inbox.

One job carries many bodies: it reads batches from the inbox stream through the consumer
group, parses them (malformed items go to quarantine), applies all their events in one
pipelined ledger call, and acknowledges the bodies. It stops when the inbox is empty or its
time budget is spent (then it queues its successor). A body read by a worker that died is taken
over after ``CLAIM_IDLE_SECONDS``; applying it again changes nothing (claims, compare-and-set).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from typing import Any

import redis

from processor.context import Context, build_context
from processor.core.account_events import AccountFacts, account_facts
from processor.core.events import Event
from processor.core.parse import load_json_object, parse_document
from processor.errors import BadPayload
from processor.settings import load_settings
from processor.store.inbox import Entry
from processor.store.keys import GROUP
from processor.store.ledger import ApplyResult
from processor.store.meta_state import MetaState
from workers import failures, jobs, metrics
from workers.budget_check import check_after_batch

log = logging.getLogger(__name__)
LEASE_SECONDS = 15.0  # a sharded inbox: see _lease_seconds
SHARD_POLL_SECONDS = 0.05  # a sharded inbox: how often an idle job looks for bodies
_context: Context | None = None


def context() -> Context:
    """The worker process's context (set by the runner, or built from the environment)."""
    global _context
    if _context is None:
        _context = build_context(load_settings(os.environ))
    return _context


def use_context(ctx: Context) -> None:
    global _context
    _context = ctx


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def drain(max_seconds: float | None = None) -> dict[str, int]:
    """Process inbox entries until none are left or the time budget is spent; record what
    was done on the RQ job (meta and description, see workers/jobs.py)."""
    ctx = context()
    started = time.monotonic()
    totals = dict.fromkeys(
        (
            "bodies",
            "events",
            "applied",
            "duplicates",
            "unchanged",
            "quarantined",
            "records",
            "conflicts",
        ),
        0,
    )
    try:
        _drain(ctx, max_seconds or ctx.settings.drain_max_seconds, totals)
    finally:
        with contextlib.suppress(redis.RedisError):  # the counts are also in /metrics
            jobs.finish(ctx, totals, ctx.inbox.backlog(), time.monotonic() - started)
    return totals


def _drain(ctx: Context, max_seconds: float, totals: dict[str, int]) -> None:
    ctx.redis.delete(ctx.keys.drain_ticket)  # bodies stored from now on queue a new job
    deadline = time.monotonic() + max_seconds
    inbox = ctx.inbox
    inbox.ensure_group()
    if inbox.known() == 1:
        emptied = _drain_shard(ctx, 0, deadline, totals, ctx.settings.drain_idle_seconds)
    else:
        emptied = _drain_shards(ctx, deadline, totals)
    if not emptied and inbox.backlog()["lag"]:
        ctx.enqueue_drain()


def _drain_shard(
    ctx: Context,
    shard: int,
    deadline: float,
    totals: dict[str, int],
    idle: float,
    holder: str | None = None,
) -> bool:
    """Process one shard's bodies until none come within ``idle`` seconds (True) or the
    deadline passes (False); ``holder``: keep the shard's lease meanwhile."""
    settings = ctx.settings
    inbox, consumer = ctx.inbox, consumer_name()
    batch, next_claim, small = settings.drain_batch_bodies, 0.0, False
    lease, renewed = _lease_seconds(ctx), time.monotonic()
    while (now := time.monotonic()) < deadline:
        entries: list[Entry] = []
        if now >= next_claim:  # bodies of a worker that died, at most once a second
            totals["quarantined"] += _give_up_poison(ctx, shard)
            entries = inbox.claim_stale(consumer, settings.claim_idle_seconds, batch, shard)
            next_claim = now + 1.0
        if len(entries) < batch:  # wait a little for new bodies rather than end the job
            wait = min(idle, max(0.0, deadline - now))
            entries += inbox.read(consumer, batch - len(entries), wait, shard)
        gather = 0 < len(entries) < batch // 4 and settings.drain_gather_seconds
        if gather and (holder is None or small):  # a steady trickle: gather a batch
            time.sleep(settings.drain_gather_seconds)
            entries += inbox.read(consumer, batch - len(entries), shard=shard)
        if not entries:
            return True
        small = len(entries) < batch // 4
        if holder is not None and now - renewed > lease / 3:
            inbox.lease(shard, holder, lease)  # lost meanwhile: only conflicts, never errors
            renewed = now
        process(ctx, entries, totals)
    return False


def _drain_shards(ctx: Context, deadline: float, totals: dict[str, int]) -> bool:
    """A sharded inbox: take a free shard with bodies waiting, drain it alone, let it go,
    take the next; True once no free shard has had bodies for ``DRAIN_IDLE_SECONDS``."""
    settings, inbox, holder = ctx.settings, ctx.inbox, consumer_name()
    idle_since: float | None = None
    next_claim = 0.0
    while (now := time.monotonic()) < deadline:
        shards = inbox.shard_backlogs()
        if now >= next_claim:  # a dead worker's bodies in shards nobody holds
            _claim_orphans(ctx, shards, holder, totals)
            next_claim = now + 1.0
        shard = _take(ctx, shards, holder)
        if shard is None:
            idle_since = idle_since or now
            if now - idle_since >= settings.drain_idle_seconds:
                return True
            time.sleep(SHARD_POLL_SECONDS)
            continue
        idle_since = None
        waiting = [s for n, s in enumerate(shards) if n != shard and s["lag"] and not s["holder"]]
        if waiting and ctx.queue.count == 0:  # an idle worker may take the other shards
            ctx.enqueue_drain()
        try:
            if not _drain_shard(ctx, shard, deadline, totals, 0.0, holder):
                return False
        finally:
            inbox.release(shard, holder)
    return False


def _take(ctx: Context, shards: list[dict[str, Any]], holder: str) -> int | None:
    """Lease the free shard with the most bodies waiting; None when there is none."""
    mine = holder.encode()
    free = [n for n, s in enumerate(shards) if s["lag"] and s["holder"] in (None, mine)]
    for n in sorted(free, key=lambda n: -shards[n]["lag"]):
        if ctx.inbox.lease(n, holder, _lease_seconds(ctx)):
            return n
    return None


def _claim_orphans(
    ctx: Context, shards: list[dict[str, Any]], holder: str, totals: dict[str, int]
) -> None:
    """Bodies left pending in shards that no job holds (their worker died), taken over once
    idle for ``CLAIM_IDLE_SECONDS``."""
    settings = ctx.settings
    for n, shard in enumerate(shards):
        if shard["pending"] and not shard["holder"]:
            totals["quarantined"] += _give_up_poison(ctx, n)
            batch = settings.drain_batch_bodies
            entries = ctx.inbox.claim_stale(holder, settings.claim_idle_seconds, batch, n)
            if entries:
                process(ctx, entries, totals)


def _lease_seconds(ctx: Context) -> float:
    """How long a shard stays with a job that stopped renewing it (it died): new bodies of
    the shard wait that long; its pending ones wait CLAIM_IDLE_SECONDS as ever."""
    return max(1.0, min(ctx.settings.claim_idle_seconds, LEASE_SECONDS))


def _give_up_poison(ctx: Context, shard: int = 0) -> int:
    """Quarantine bodies that made workers fail ``max_deliveries`` times (and acknowledge
    them), so that one body cannot stop the inbox; ``wa-billing quarantine replay`` brings
    them back after a fix."""
    settings = ctx.settings
    max_deliveries = settings.max_deliveries
    ids = ctx.inbox.delivered_too_often(max_deliveries, settings.claim_idle_seconds, shard=shard)
    if ids:
        reason = f"body: processing failed {max_deliveries} times (worker crash or bug)"
        items = [{"reason": reason, "body_id": Entry(i, b"", shard).body_id} for i in ids]
        failures.record_new(ctx, items, ctx.quarantine.add_many(items))
        ctx.inbox.ack(ids, shard)
        log.error("quarantined %d bodies that failed %d times", len(ids), max_deliveries)
    return len(ids)


def process(ctx: Context, entries: list[Entry], totals: dict[str, int]) -> None:
    """Parse, apply and acknowledge one batch of inbox entries."""
    events: list[Event] = []
    origin: dict[int, str] = {}
    rejected: list[dict[str, Any]] = []
    facts = AccountFacts()
    for entry in entries:
        before = len(events)
        _parse(ctx, entry, events, rejected, facts)
        for i in range(before, len(events)):
            origin[id(events[i])] = entry.body_id
    # Trimming pair histories is safe only when no other worker holds older bodies (a dead
    # one's, waiting to be taken over): their events would fall behind the moved floors.
    ours = min(e.id_key for e in entries)
    result = ctx.ledger.apply(events, may_trim=ctx.inbox.oldest_pending() >= ours)
    for event, reason in result.rejected:
        rejected.append({"reason": reason, "body_id": origin.get(id(event)), "wamid": event.wamid})
    pipe = ctx.redis.pipeline(transaction=False)  # one round trip: keep, acknowledge, count
    ctx.quarantine.add_many(rejected, pipe=pipe)  # its first replies: the new item ids
    if facts:  # display numbers (in the pipe), tier and template webhooks (may record alerts)
        state = MetaState(ctx.redis, ctx.keys, ctx.settings.records_retention_seconds)
        state.apply(facts, pipe)
    for shard in sorted({e.shard for e in entries}):
        pipe.xack(ctx.inbox.stream(shard), GROUP, *[e.id for e in entries if e.shard == shard])
    metrics.record_batch(ctx, entries, len(events), result, pipe)
    replies = pipe.execute()
    failures.record_new(ctx, rejected, replies[: len(rejected)])
    check_after_batch(ctx, events)
    _add(totals, entries, events, result, rejected)


def _parse(
    ctx: Context,
    entry: Entry,
    events: list[Event],
    rejected: list[dict[str, Any]],
    facts: AccountFacts,
) -> None:
    try:
        doc = load_json_object(entry.body, ctx.settings.max_json_depth)  # replays come here too
    except BadPayload as exc:
        rejected.append({"reason": f"body: {exc}", "body_id": entry.body_id})
        return
    parsed = parse_document(doc)
    events.extend(parsed.events)
    found = account_facts(doc)  # the fields beside `messages`, routed by field
    facts.display_numbers.update(found.display_numbers)
    facts.tier_updates.extend(found.tier_updates)
    facts.templates.extend(found.templates)
    for item in (*parsed.rejected, *found.rejected):
        rejected.append(
            {
                "reason": item.reason,
                "path": item.path,
                "item": item.item,
                "body_id": entry.body_id,
            }
        )


def _add(
    totals: dict[str, int],
    entries: list[Entry],
    events: list[Event],
    result: ApplyResult,
    rejected: list[dict[str, Any]],
) -> None:
    totals["bodies"] += len(entries)
    totals["events"] += len(events)
    totals["applied"] += result.applied
    totals["records"] += result.records
    totals["conflicts"] += result.conflicts
    totals["duplicates"] += result.duplicates
    totals["unchanged"] += result.unchanged
    totals["quarantined"] += len(rejected)

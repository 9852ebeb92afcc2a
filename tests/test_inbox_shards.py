"""The sharded inbox (INBOX_SHARDS): a body goes to the shard of its business number, one job
drains a shard at a time, and the records equal those of an unsharded inbox; a pair is decided
on one worker (no compare-and-set conflicts), a dead job's shard and bodies are taken over, and
nothing is lost or billed twice."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from processor.context import Context, build_context
from processor.settings import load_settings
from processor.store.inbox import Inbox, shard_of, split_body_id
from processor.store.keys import GROUP
from tests import payloads as p
from tests.ledger_helpers import snapshot, write_config
from tests.rq_helpers import drain_with_workers
from tests.test_race import reference as race_reference
from workers.drain import drain, use_context

T0 = 1_790_812_800 + 3 * 86_400  # October 2026
PHONES = [f"42000000000{n:04d}" for n in range(6)]
USERS = [f"5511977{n:06d}" for n in range(8)]
SHARDS = 4


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The conftest environment with a test-owned rate book, and four inbox shards."""
    config = str(write_config(tmp_path / "config"))
    return {**environ, "BILLING_CONFIG_DIR": config, "INBOX_SHARDS": str(SHARDS)}


def traffic(seed: int = 5, bodies: int = 48) -> list[bytes]:
    """Bodies of one business number each (several numbers, few users: pairs recur), with
    sent/delivered/read out of order and inbound messages opening service windows."""
    rng = random.Random(seed)
    out = []
    for b in range(bodies):
        phone, statuses, messages = rng.choice(PHONES), [], []
        for k in range(6):
            n, user = b * 6 + k, rng.choice(USERS)
            t = T0 + rng.randrange(0, 2 * 86_400)
            category = rng.choice(["service", "utility", "marketing"])
            if rng.random() < 0.2:
                messages.append(p.inbound(f"wamid.in{n}", t - 60, user))
            for state, dt in rng.sample([("sent", -2), ("delivered", 0), ("read", 30)], 3):
                statuses.append(
                    p.status(f"wamid.{n}", state, t + dt, user=user, category=category,
                             pricing_type="regular")
                )  # fmt: skip
        out.append(p.raw(p.body(p.change(messages=messages, statuses=statuses, phone=phone))))
    return out


def reference(environ: dict[str, str], bodies: list[bytes]) -> dict[str, Any]:
    """The same bodies through an unsharded inbox, one worker."""
    return race_reference({**environ, "INBOX_SHARDS": "1"}, bodies)


def shard_streams(ctx: Context) -> dict[int, list[bytes]]:
    return {n: [e.body for e in ctx.inbox._shard_entries(n, "-", "+", 100)] for n in range(4)}


def test_a_business_number_has_one_shard_and_body_ids_name_it(ctx: Context) -> None:
    assert len({shard_of(p.body(p.change(phone=n)), SHARDS) for n in PHONES}) >= 3
    bodies = traffic(bodies=24)
    ctx.inbox.ensure_group()
    ids = [ctx.inbox.push(body)[0] for body in bodies]
    streams = shard_streams(ctx)
    for phone in PHONES:  # every body of a number is in one stream
        homes = {n for n, found in streams.items() for b in found if phone.encode() in b}
        assert len(homes) <= 1, (phone, homes)
    assert sorted(b for found in streams.values() for b in found) == sorted(bodies)
    for body_id, body in zip(ids, bodies, strict=True):  # ids name the body and its shard
        _, shard = split_body_id(body_id)
        assert body_id.endswith(f"@{shard}") == (shard > 0)
        entry = ctx.inbox.get(body_id)
        assert entry is not None and entry.body == body and entry.body_id == body_id
    archive = list(ctx.inbox.entries())  # in order of arrival (the same millisecond: any)
    assert sorted(e.body for e in archive) == sorted(bodies)
    assert [e.received_ms for e in archive] == sorted(e.received_ms for e in archive)
    assert ctx.inbox.backlog() == {"lag": len(bodies), "pending": 0}
    assert ctx.inbox.archived() == len(bodies)
    # equal stream ids in two shards: the body id still tells them apart
    ctx.redis.xadd(ctx.keys.inbox_shard(1), {b"b": b"one"}, id="9999999999999-1")
    ctx.redis.xadd(ctx.keys.inbox_shard(2), {b"b": b"two"}, id="9999999999999-1")
    found = (ctx.inbox.get("9999999999999-1@1"), ctx.inbox.get("9999999999999-1@2"))
    assert [e.body for e in found if e is not None] == [b"one", b"two"]


def test_sharded_workers_give_the_unsharded_result_without_conflicts(
    environ: dict[str, str], ctx: Context
) -> None:
    bodies = traffic()
    expected = reference(environ, bodies)
    assert len(expected["records"]) > 150
    redelivered = bodies + list(reversed(bodies))  # every event twice, in both orders
    for body in redelivered:
        ctx.inbox.push(body)
    env = {**environ, "DRAIN_BATCH_BODIES": "3", "JANITOR_INTERVAL_SECONDS": "0.3"}
    drain_with_workers(ctx, env, 2)
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected
    stats = ctx.redis.hgetall(ctx.keys.stats)
    assert int(stats.get(b"apply_conflicts", 0)) == 0  # each pair decided on one worker
    assert int(stats[b"bodies_processed"]) == len(redelivered)  # each body once
    assert ctx.quarantine.list()["total"] == 0


def test_a_dead_jobs_shard_and_bodies_are_taken_over(environ: dict[str, str], ctx: Context) -> None:
    bodies = traffic(seed=9, bodies=30)
    expected = reference(environ, bodies)
    ctx.inbox.ensure_group()
    for body in bodies:
        ctx.inbox.push(body)
    busiest = max(range(SHARDS), key=lambda n: len(shard_streams(ctx)[n]))
    # a job read part of a shard, holds its lease, and dies (its lease runs out, CLAIM_IDLE
    # is 0.5 s in these tests)
    held = ctx.inbox.read("dead-worker", 3, shard=busiest)
    assert held and ctx.inbox.lease(busiest, "dead-worker", 1.0)
    assert not ctx.inbox.lease(busiest, "another", 1.0)
    use_context(ctx)
    first = drain(max_seconds=30)  # the other shards; that one is still leased
    assert ctx.inbox.backlog()["pending"] == len(held)
    time.sleep(1.0)  # the lease runs out (the janitor queues the next job then)
    second = drain(max_seconds=30)
    assert ctx.inbox.backlog() == {"lag": 0, "pending": 0}
    assert first["bodies"] + second["bodies"] == len(bodies)  # the dead job's three too, once
    assert snapshot(ctx.redis, ctx.settings.redis_prefix) == expected
    consumers = {
        c["name"].decode(): c["pending"]
        for c in ctx.redis.xinfo_consumers(ctx.keys.inbox_shard(busiest), GROUP)
    }
    assert consumers["dead-worker"] == 0


def test_fewer_shards_later_still_drain_the_higher_ones(
    environ: dict[str, str], ctx: Context
) -> None:
    """Also a worker left unsharded while the web shards: the web records the count."""
    bodies = traffic(seed=3, bodies=20)
    expected = reference(environ, bodies)
    for body in bodies:  # as the web does: no consumer group yet
        ctx.inbox.push(body)
    assert any(shard_streams(ctx)[n] for n in (2, 3))
    fewer = build_context(load_settings({**environ, "INBOX_SHARDS": "1"}))
    try:
        assert fewer.inbox.known() == SHARDS and fewer.inbox.shards == 1
        assert Inbox(fewer.redis, fewer.keys).shards == SHARDS  # no setting: as many as used
        use_context(fewer)
        drain(max_seconds=30)
        assert fewer.inbox.backlog() == {"lag": 0, "pending": 0}
        assert snapshot(fewer.redis, fewer.settings.redis_prefix) == expected
    finally:
        fewer.close()

"""Redis memory per dedup claim, per tracked (business number, user) pair and per record.

Two measures: ``MEMORY USAGE`` averaged over the keys a drain left (the key and its value as
Redis accounts them), and, for claims, the growth of ``used_memory`` when 50,000 claims of the
processor's exact shape are written (which also counts the keyspace and expiry entries).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import redis

from processor.context import Context

SAMPLE = 2_000
SYNTHETIC = 50_000


@dataclass
class Memory:
    claims: int  # claim keys in the database
    claim_usage: float  # MEMORY USAGE, mean over a sample
    claim_used_memory: float  # used_memory growth per synthetic claim
    pairs: int
    pair_usage: float
    messages_per_pair: float
    records: int = 0  # records in the month hashes
    record_usage: float = 0.0  # bytes per record in its month's hash (MEMORY USAGE / HLEN)
    feed_usage: float = 0.0  # bytes per record version on the records feed


def sample(ctx: Context, pattern: str) -> tuple[int, float]:
    """(keys matching, mean MEMORY USAGE of up to SAMPLE of them)."""
    keys = list(itertools.islice(ctx.redis.scan_iter(pattern, count=1000), SAMPLE))
    pipe = ctx.redis.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    sizes = [s for s in pipe.execute() if s is not None]
    total = sum(1 for _ in ctx.redis.scan_iter(pattern, count=5000))
    return total, (sum(sizes) / len(sizes) if sizes else 0.0)


def synthetic_claims(ctx: Context, n: int = SYNTHETIC) -> float:
    """used_memory growth per claim, for ``n`` claims written as apply.lua writes them."""
    client: redis.Redis = ctx.redis
    ttl = ctx.settings.dedup_ttl_seconds
    before = client.info("memory")["used_memory"]
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        claim = f"st|420000000000002|wamid.HBgM{i:012d}FQIAERgS|delivered|1762000000"
        pipe.set(ctx.keys.claim(claim), "1", ex=ttl)
        if len(pipe) >= 1000:
            pipe.execute()
    pipe.execute()
    grown = client.info("memory")["used_memory"] - before
    return grown / n


def records(ctx: Context) -> tuple[int, float, float]:
    """(records, bytes per record in the month hashes, bytes per version on the feed)."""
    client: redis.Redis = ctx.redis
    keys = list(client.scan_iter(f"{ctx.keys.records_prefix}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
        pipe.hlen(key)
    replies = pipe.execute()
    size, count = sum(replies[0::2]), sum(replies[1::2])
    feed_len = int(client.xlen(ctx.keys.feed)) if client.exists(ctx.keys.feed) else 0
    feed_size = client.memory_usage(ctx.keys.feed, samples=0) or 0 if feed_len else 0
    per_record = size / count if count else 0.0
    return count, per_record, (feed_size / feed_len if feed_len else 0.0)


def measure(ctx: Context, messages: int) -> Memory:
    """Sample what a drain left; ``messages``: distinct outbound messages of its traffic."""
    claims, claim_usage = sample(ctx, f"{ctx.keys.prefix}:c:*")
    pairs, pair_usage = sample(ctx, f"{ctx.keys.prefix}:pair:*")
    count, per_record, per_version = records(ctx)
    return Memory(
        records=count,
        record_usage=per_record,
        feed_usage=per_version,
        claims=claims,
        claim_usage=claim_usage,
        claim_used_memory=synthetic_claims(ctx),
        pairs=pairs,
        pair_usage=pair_usage,
        messages_per_pair=messages / pairs if pairs else 0.0,
    )

"""Redis memory per dedup claim and per tracked (business number, user) pair.

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


def measure(ctx: Context, messages: int) -> Memory:
    """Sample what a drain left; ``messages``: distinct outbound messages of its traffic."""
    claims, claim_usage = sample(ctx, f"{ctx.keys.prefix}:c:*")
    pairs, pair_usage = sample(ctx, f"{ctx.keys.prefix}:pair:*")
    return Memory(
        claims=claims,
        claim_usage=claim_usage,
        claim_used_memory=synthetic_claims(ctx),
        pairs=pairs,
        pair_usage=pair_usage,
        messages_per_pair=messages / pairs if pairs else 0.0,
    )

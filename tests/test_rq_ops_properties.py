"""The failed registry is the quarantine, whatever operators do and in whatever order.

Any sequence of good and poison bodies, worker runs, Requeue clicks (the dashboard's own
endpoint), ``quarantine replay`` of single items and the deployment of a fix ends, whenever no
job is waiting, with exactly one failed job per quarantined item, and no message billed twice.
Real Redis and real RQ workers, so few examples (``PROPERTY_EXAMPLES`` scales them).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.registry import FailedJobRegistry

from processor.context import Context, build_context
from processor.core import parse
from processor.settings import load_settings
from tests import payloads as p
from tests.conftest import _wipe, auth
from tests.rq_helpers import drop_jobs
from workers import failures
from workers.runner import run_worker

T0 = 1_751_400_000
MONTH = "2025-07"
PRICED = {"category": "marketing", "pricing_type": "regular"}

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.integers(0, 3)),
        st.tuples(st.just("bad"), st.sampled_from(["timestamp", "two", "json", "spaced"])),
        st.tuples(st.just("work")),
        st.tuples(st.just("requeue"), st.integers(0, 5)),
        st.tuples(st.just("replay"), st.integers(0, 5)),
        st.tuples(st.just("fix")),
    ),
    min_size=1,
    max_size=8,
)


def body(kind: str, n: int) -> bytes:
    if kind == "good":
        item = p.status(f"wamid.g{n}", "delivered", T0 + n, user=f"5511900{n:06d}", **PRICED)
        return p.raw(p.body(p.change(statuses=[item])))
    if kind == "json":
        return b"\x00not json{"
    if kind == "timestamp":
        bad = p.status(f"wamid.t{n}", "delivered", T0, **PRICED)
        bad["timestamp"] = "yesterday"
        return p.raw(p.body(p.change(statuses=[bad])))
    if kind == "spaced":
        item = p.status(f"wamid.s{n}", "delivered", T0 + 100 + n, **PRICED)
        item["recipient_id"] = "5511 98888 7777"
        return p.raw(p.body(p.change(statuses=[item])))
    two = [
        {"id": f"wamid.x{n}", "status": "exploded", "timestamp": str(T0)},
        p.status(f"wamid.ok{n}", "delivered", T0 + 200 + n, user=f"5511800{n:06d}", **PRICED),
        {"id": f"wamid.y{n}", "status": "delivered", "timestamp": "soon"},
    ]
    return p.raw(p.body(p.change(statuses=two)))


def q_jobs(ctx: Context) -> set[str]:
    ids = FailedJobRegistry(queue=ctx.queue).get_job_ids(cleanup=False)
    return {i for i in ids if failures.item_id_of(i)}


def quarantined(ctx: Context) -> list[str]:
    return [item["id"] for item in ctx.quarantine.list(limit=1000)["items"]]


def assert_mirrored(ctx: Context) -> None:
    assert ctx.queue.count == 0
    assert q_jobs(ctx) == {failures.job_id(i) for i in quarantined(ctx)}


def billed_once(ctx: Context) -> None:
    counts: dict[str, int] = {}
    for raw in ctx.redis.hvals(ctx.keys.records(p.WABA, MONTH)):
        wamid = json.loads(raw)["wamid"]
        counts[wamid] = counts.get(wamid, 0) + 1
    assert all(v == 1 for v in counts.values()), counts


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "100")) // 8 or 1,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_failed_jobs_mirror_the_quarantine_whatever_operators_do(
    environ: dict[str, str], ops: list[tuple[Any, ...]]
) -> None:
    tag = secrets.token_hex(4)
    env = {**environ, "REDIS_PREFIX": f"t{tag}", "QUEUE_NAME": f"q{tag}"}
    ctx = build_context(load_settings(env))
    from processor.web import create_app

    client = create_app(ctx=ctx).test_client()
    unfixed = parse._USER
    try:
        ctx.inbox.ensure_group()
        for n, op in enumerate(ops):
            if op[0] in ("good", "bad"):
                ctx.inbox.push(body("good" if op[0] == "good" else op[1], n))
            elif op[0] == "work":
                run_worker(ctx, burst=True)
                assert_mirrored(ctx)
            elif op[0] == "requeue" and (jobs := sorted(q_jobs(ctx))):
                job_id = jobs[op[1] % len(jobs)]
                assert client.post(f"/rq/job/{job_id}/requeue", headers=auth()).status_code == 200
            elif op[0] == "replay" and (items := quarantined(ctx)):
                failures.replay_items(ctx, [items[op[1] % len(items)]])
            elif op[0] == "fix":
                parse._USER = re.compile(r"[0-9 ]{4,20}")
        run_worker(ctx, burst=True)
        assert_mirrored(ctx)
        billed_once(ctx)
    finally:
        parse._USER = unfixed
        drop_jobs(ctx)
        _wipe(ctx.redis, ctx.settings)
        ctx.close()

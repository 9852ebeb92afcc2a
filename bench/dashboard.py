"""How fast is the cost dashboard on a month of a million records?

``python -m bench.dashboard [--records 1000000] [--redis-url URL]``

Starts its own throw-away ``redis-server`` on a free port (unless ``--redis-url`` is given:
then it uses that server's database with a prefix of its own and deletes its keys after), books
``--booked`` delivered messages of one WABA-month through the real ledger (``Ledger.apply``:
the apply script writes the records, the usage counters and the dashboard's breakdown
counters exactly as the drain workers do; webhook parsing is skipped), then copies those
records under new ids and multiplies the counters until the month holds ``--records`` (booking
a million through the ledger takes about an hour on a busy 2-core machine; the counters' fields
do not grow with the records, only their counts), then times:

- ``GET /dashboard`` for the WABA and for every WABA (the full page, rendered), median of 5;
- ``GET /v1/usage`` (the query the page shares), median of 5;
- for comparison, the record scan the page avoids (``Queries.discrepancies`` reads every
  record of the month), once.

Nothing is asserted: it prints the figures (the README quotes them).
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from processor.context import build_context
from processor.core.events import Pair, Pricing, Status
from processor.settings import load_settings

WABA = "310000000000001"
PHONES = ("420000000000002", "420000000000003", "420000000000004")
MONTH = "2025-11"
START = int(datetime(2025, 11, 1, tzinfo=UTC).timestamp())
CATEGORIES = (("marketing", 0.55), ("utility", 0.3), ("authentication", 0.1), ("service", 0.05))
PREFIXES = (("5511", 9), ("91", 10), ("52", 10), ("62812", 8))
TOKEN = "bench-dashboard-token"


@contextmanager
def redis_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="bench-dash-")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", folder]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def events(records: int, seed: int = 1) -> Iterator[list[Status]]:
    """Batches of delivered statuses (Meta's pricing on each), in time order, ~5 per user."""
    rng = random.Random(seed)
    users = max(1, records // 5)
    names = [c for c, _ in CATEGORIES]
    weights = [w for _, w in CATEGORIES]
    batch: list[Status] = []
    span = 29 * 86_400
    for i in range(records):
        prefix, digits = PREFIXES[i % len(PREFIXES)]
        user = f"{prefix}{(i % users):0{digits}d}"
        category = rng.choices(names, weights)[0]
        pair = Pair(WABA, PHONES[i % len(PHONES)], user)
        t = START + i * span // records
        pricing = Pricing(
            billable=True,
            model="PMP",
            category=category,
            type="free_customer_service" if category == "service" else "regular",
        )
        batch.append(Status(pair, f"wamid.b{i}", "delivered", t, pricing=pricing))
        if len(batch) == 5_000:
            yield batch
            batch = []
    if batch:
        yield batch


def median_seconds(run: Callable[[], object], times: int = 5) -> float:
    found = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        found.append(time.perf_counter() - started)
    return statistics.median(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--booked",
        type=int,
        default=25_000,
        help="records booked through the ledger; the rest are copies of them",
    )
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    if args.redis_url:
        measure(args.redis_url, args.records, args.booked)
    else:
        with redis_server() as url:
            measure(url, args.records, args.booked, own_server=True)


def replicate(ctx: Any, copies: int) -> None:
    """Make the month ``copies`` times as large: every record again under new ids, and every
    usage and breakdown counter multiplied (what booking the copies would have added: the
    counters' fields are the same, only their counts grow)."""
    records = ctx.keys.records(WABA, MONTH)
    originals = list(ctx.redis.hscan_iter(records, count=2_000))
    for k in range(1, copies):
        pipe = ctx.redis.pipeline(transaction=False)
        for n, (rid, body) in enumerate(originals, 1):
            pipe.hset(records, f"{rid.decode()}~{k}", body)
            if n % 5_000 == 0:
                pipe.execute()
        pipe.execute()
    for key in (ctx.keys.usage(WABA, MONTH), ctx.keys.usage_daily(WABA, MONTH)):
        for field, count in ctx.redis.hgetall(key).items():
            ctx.redis.hincrby(key, field, int(count) * (copies - 1))


def measure(url: str, records: int, booked: int, own_server: bool = False) -> None:
    from processor.web import create_app

    env = {"REDIS_URL": url, "REDIS_PREFIX": f"benchdash{random.randrange(10**6)}",
           "API_TOKEN": TOKEN, "META_VERIFY_TOKEN": "x", "WA_BILLING_ALLOW_UNSIGNED": "1",
           "RECORDS_FEED_MAXLEN": "1000"}  # fmt: skip
    ctx = build_context(load_settings(env))
    try:
        started = time.perf_counter()
        for batch in events(min(records, booked)):
            ctx.ledger.apply(batch)
        took = time.perf_counter() - started
        print(
            f"booked {ctx.queries.record_count(WABA, MONTH)} records through Ledger.apply "
            f"in {took:.0f} s"
        )
        if records > booked:
            copies = -(-records // booked)
            started = time.perf_counter()
            replicate(ctx, copies)
            print(f"replicated them x{copies} in {time.perf_counter() - started:.0f} s")
        count = ctx.queries.record_count(WABA, MONTH)
        print(f"the month holds {count} records")
        client = create_app(ctx=ctx).test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def get(path: str) -> Callable[[], object]:
            def run() -> object:
                reply = client.get(path, headers=headers)
                assert reply.status_code == 200, reply.status_code
                return reply

            return run

        page = median_seconds(get(f"/dashboard?waba_id={WABA}&month={MONTH}"))
        every = median_seconds(get(f"/dashboard?waba_id=all&month={MONTH}"))
        usage = median_seconds(get(f"/v1/usage?waba_id={WABA}&month={MONTH}"))
        scan = median_seconds(lambda: ctx.queries.discrepancies(WABA, MONTH), times=1)
        memory = ctx.redis.info("memory")["used_memory_human"]
        print(f"GET /dashboard (one WABA)   median {page * 1000:.1f} ms")
        print(f"GET /dashboard (all WABAs)  median {every * 1000:.1f} ms")
        print(f"GET /v1/usage               median {usage * 1000:.1f} ms")
        print(f"record scan (discrepancies) once   {scan:.1f} s  (what the page does not do)")
        print(f"Redis used memory {memory}")
    finally:
        if own_server:
            ctx.close()  # the server and its data are thrown away
        else:
            for key in ctx.redis.scan_iter(f"{ctx.keys.prefix}:*", count=10_000):
                ctx.redis.unlink(key)
            ctx.close()


if __name__ == "__main__":
    main()

"""A primary of the ledger's cluster killed mid-run: a replica takes over, the ledger retries
its calls through their claims, and the records and usage equal a standalone run's (nothing
lost, nothing counted twice)."""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from processor.config_files import load_ratebook
from processor.core.events import Event, Pair, Pricing, Status
from processor.store.ledger import Ledger, LedgerConfig
from tests.cluster import LocalCluster, replicas_online, wait_failover
from tests.fault_helpers import wait_for
from tests.ledger_helpers import DAY, keys_for, make_ledger, small_book, snapshot, write_config

pytestmark = pytest.mark.cluster
T0 = 1_790_812_800 + 3 * DAY  # October 2026 (pmp-2026-10: service allowance per phone)
PORTFOLIOS = {f"w-{n}": f"P{n % 4}" for n in range(8)}  # 8 WABAs, 4 portfolios


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(Path(tmp_path_factory.mktemp("failover")))
    try:
        local.start()
        # a replica can take over only once its first sync is done (diskless sync waits 5 s)
        wait_for(lambda: replicas_online(local), 60, "every replica in sync")
        yield local
    finally:
        local.stop()


def traffic(seed: int = 3) -> list[Event]:
    """Marketing and service messages, sent/delivered/read, shuffled a little."""
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(240):
        waba = f"w-{n % 8}"
        pair = Pair(waba, f"phone-{waba}", f"55119{rng.randrange(30):08d}")
        category = rng.choice(["marketing", "service", "utility"])
        t = T0 + rng.randrange(0, 2 * DAY)
        for state, dt in (("sent", -2), ("delivered", 0), ("read", 30)):
            pricing = Pricing(True, "PMP", category, "regular")
            events.append(Status(pair, f"wamid.{n}", state, t + dt, None, pricing))
    window = 12  # statuses arrive out of order within a few bodies
    return [e for i in range(0, len(events), window)
            for e in rng.sample(events[i:i + window], len(events[i:i + window]))]  # fmt: skip


def config(tmp_path: Path) -> Path:
    directory = write_config(tmp_path / "config")
    rows = "".join(f"{w},USD,UTC,{p}\n" for w, p in PORTFOLIOS.items())
    (directory / "wabas.csv").write_text("waba_id,currency,timezone,portfolio_id\n" + rows)
    return directory


def test_a_primary_killed_mid_run_fails_over_with_nothing_lost_or_counted_twice(
    cluster: LocalCluster, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = traffic()
    batches = [events[i : i + 24] for i in range(0, len(events), 24)]
    directory = config(tmp_path)
    standalone = redis.Redis.from_url(redis_url)
    ref_prefix = "fo" + secrets.token_hex(4)
    try:
        reference = make_ledger(standalone, ref_prefix, directory)
        for batch in batches:
            reference.apply(batch)
        expected = snapshot(standalone, ref_prefix)
    finally:
        stale = list(standalone.scan_iter(f"{ref_prefix}:*"))
        if stale:
            standalone.delete(*stale)
        standalone.close()
    assert len(expected["records"]) > 200

    client = RedisCluster.from_url(cluster.url)
    prefix = "fo" + secrets.token_hex(4)
    keys = keys_for(client, prefix, directory)  # type: ignore[arg-type]
    settings = LedgerConfig(dedup_ttl=8 * DAY, pair_horizon=10 * DAY, records_retention=400 * DAY,
                            feed_maxlen=100_000, wait_replicas=1, retry_seconds=60)  # fmt: skip
    ledger = Ledger(client, keys, load_ratebook(directory), settings, small_book(3))  # type: ignore[arg-type]
    victim = cluster.primary_of(keys.pair(Pair("w-1", "phone-w-1", "x")))
    killer = threading.Thread(target=victim.kill)
    applied = 0
    for n, batch in enumerate(batches):
        if n == 3:
            killer.start()  # dies while the next batches are being applied
        applied += ledger.apply(batch).applied
    killer.join()
    assert "ledger store moving" in caplog.text  # the kill hit calls in flight: retried
    wait_failover(cluster, victim)
    assert snapshot(client, prefix) == expected  # type: ignore[arg-type]
    again = ledger.apply(events)  # every event redelivered after the failover
    assert again.applied == 0 and again.records == 0
    assert snapshot(client, prefix) == expected  # type: ignore[arg-type]
    assert victim.process is not None and victim.process.poll() is not None
    client.close()

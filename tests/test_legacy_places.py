"""Records booked before records kept their own table of places (upgrade path): `rerate` gives
them their table, and later shifts reprice them again."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Pair, Pricing, Status
from processor.store.keys import Keys
from processor.store.queries import Queries
from processor.store.rerate import Rerater
from tests.ledger_helpers import PHONE, WABA, make_ledger, small_book, write_config

OCT_2026 = 1_790_812_800 + 5 * 86_400


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "legacy" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix, "config": write_config(tmp_path / "config")}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def service(n: int, t: int) -> Status:
    pair = Pair(WABA, PHONE, f"55119{n:08d}")
    return Status(pair, f"wamid.{n:04d}", "delivered", t, None, Pricing(True, "PMP", "service"))


def strip_places(world: dict[str, Any]) -> None:
    """Make the stored records look like an older version's: no ``places``."""
    client = world["client"]
    for key in client.scan_iter(f"{world['prefix']}:rec:*"):
        for rid, body in client.hgetall(key).items():
            rec = json.loads(body)
            rec.pop("places", None)
            client.hset(key, rid, json.dumps(rec))


def test_rerate_gives_legacy_allowance_records_their_places(world: dict[str, Any]) -> None:
    ledger = make_ledger(world["client"], world["prefix"], world["config"], limit=2)
    ledger.apply([service(n, OCT_2026 + 10 * n) for n in range(1, 4)])
    strip_places(world)
    keys = Keys(world["prefix"])
    rerater = Rerater(world["client"], keys, load_ratebook(world["config"]), 100, small_book(2))
    assert rerater.rerate("2026-10").changed == 0  # only the internal table was added
    ledger.apply([service(9, OCT_2026 + 1)])  # the earliest: everyone moves one place back
    recs = {r["wamid"]: r for r in Queries(world["client"], keys).records(WABA, "2026-10")}
    assert recs["wamid.0009"]["free_reason"] == "free_tier"
    assert recs["wamid.0002"]["billable"] is True and recs["wamid.0002"]["version"] == 2

"""A world for the rule book's section 9 and 10 tests, run through the real pipeline: Meta-shaped
webhook bodies -> ``parse_body`` -> the ledger on a real Redis (apply script, buckets) ->
records and usage as the API reads them.

The config is the test's own (rule book 7.7 / 9.6 fixture rates, card of 2026-01-01; from
2026-10-01 service = utility): Brazil marketing 0.0625, utility 0.0068; India 0.0118 / 0.0014;
North America 0.0250 / 0.0034. Brazil utility has a volume-tier table whose first tier is the
list rate, so that the portfolio x Brazil x utility accrual can be seen.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.parse import parse_body
from processor.core.policies import PHONE_ALLOWANCE, VOLUME_TIER
from processor.store.keys import Keys
from processor.store.ledger import Ledger, LedgerConfig
from processor.store.queries import Queries
from tests import payloads as p

DAY = 86_400
WABA = "310000000000001"  # UTC
ZONED = "310000000000002"  # America/Sao_Paulo
EXEMPT = "310000000000003"  # service_exempt_until 2027-12-31
MAX_PRICE = "310000000000004"  # max_price_enabled
P1, P2, P3, P4, P5 = ("420000000000001", "420000000000002", "420000000000003",
                      "420000000000004", "420000000000005")  # fmt: skip
MARKETS = """effective_from,country,market
2020-01-01,BR,Brazil
2020-01-01,IN,India
2020-01-01,US,North America
2020-01-01,CA,North America
2020-01-01,IT,Italy
"""
FIXTURE_RATES = {
    "Brazil": {"marketing": "0.0625", "utility": "0.0068", "authentication": "0.0068"},
    "India": {"marketing": "0.0118", "utility": "0.0014", "authentication": "0.0014"},
    "North America": {"marketing": "0.0250", "utility": "0.0034", "authentication": "0.0034"},
}
TIERS = """effective_from,market,currency,category,from_volume,to_volume,rate
2026-01-01,Brazil,USD,utility,0,100000,0.0068
2026-01-01,Brazil,USD,utility,100000,,0.0060
"""
WABAS = f"""waba_id,currency,timezone,portfolio_id,service_exempt_until,max_price_enabled
{WABA},USD,UTC,,,
{ZONED},USD,America/Sao_Paulo,,,
{EXEMPT},USD,UTC,,2027-12-31,
{MAX_PRICE},USD,UTC,,,true
"""


def rates_csv(extra: str = "") -> str:
    """The fixture rates; ``service`` is the market's utility rate (rule book 9.1)."""
    rows = ["effective_from,market,currency,category,rate"]
    for market, by_category in FIXTURE_RATES.items():
        for category, rate in {**by_category, "service": by_category["utility"]}.items():
            rows.append(f"2026-01-01,{market},USD,{category},{rate}")
    return "\n".join(rows) + "\n" + extra


def write_config(directory: Path, extra_rates: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("markets", MARKETS), ("rates", rates_csv(extra_rates)),
                       ("tiers", TIERS), ("wabas", WABAS)):  # fmt: skip
        (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    return directory


def brazil(i: int) -> str:
    return f"55119{i:08d}"


class World:
    """One ledger on a real Redis (its own key prefix), fed with webhook bodies."""

    def __init__(self, client: redis.Redis, config_dir: Path) -> None:
        self.redis = client
        self.keys = Keys(f"t{secrets.token_hex(4)}")
        config = LedgerConfig(
            dedup_ttl=8 * DAY, pair_horizon=10 * DAY, records_retention=400 * DAY,
            feed_maxlen=100_000,
        )  # fmt: skip
        self.ledger = Ledger(client, self.keys, load_ratebook(config_dir), config)
        self.queries = Queries(client, self.keys)

    def post(
        self,
        statuses: list[dict[str, Any]] = (),  # type: ignore[assignment]
        messages: list[dict[str, Any]] = (),  # type: ignore[assignment]
        phone: str = P1,
        waba: str = WABA,
    ) -> None:
        """One webhook body, parsed and applied (every item must parse)."""
        doc = p.body(p.change(list(messages), list(statuses), phone=phone), waba=waba)
        parsed = parse_body(json.dumps(doc).encode())
        assert not parsed.rejected, parsed.rejected
        self.ledger.apply(list(parsed.events))

    def fill(
        self,
        n: int,
        t: int,
        phone: str = P1,
        waba: str = WABA,
        tag: str = "f",
        ptype: str | None = "free_customer_service",
    ) -> None:
        """``n`` service texts delivered from ``t`` (one a second) to ``n`` Brazilian users,
        each inside the free tier by Meta's word (``ptype``; None: Meta said nothing)."""
        statuses = [service(f"wamid.{tag}{i}", t + i, brazil(900_000 + i), ptype) for i in range(n)]
        for k in range(0, len(statuses), 500):
            self.post(statuses[k : k + 500], phone=phone, waba=waba)

    def records(self, month: str, waba: str = WABA) -> dict[str, dict[str, Any]]:
        """The month's records (latest versions) by wamid."""
        return {r["wamid"]: r for r in self.queries.records(waba, month)}

    def record(self, wamid: str, month: str, waba: str = WABA) -> dict[str, Any]:
        return self.records(month, waba)[wamid]

    def usage(self, month: str, waba: str = WABA) -> dict[str, Any]:
        return self.queries.usage(waba, month, "USD")

    def allowance_used(self, month: str, phone: str = P1, waba: str = WABA) -> int:
        """Units in the business number's service allowance bucket of ``month``."""
        return int(self.redis.zcard(self.keys.bucket(PHONE_ALLOWANCE, phone, month, waba_id=waba)))

    def accrual(self, market: str, category: str, month: str, waba: str = WABA) -> int:
        """Units counted toward the portfolio x market x category volume tiers of ``month``."""
        key = self.keys.bucket(VOLUME_TIER, waba, market, category, month, waba_id=waba)
        return int(self.redis.zcard(key))

    def wipe(self) -> None:
        for key in self.redis.scan_iter(f"{self.keys.prefix}:*", count=1000):
            self.redis.delete(key)


def service(
    wamid: str, t: int, user: str = p.USER, ptype: str | None = None, state: str = "delivered"
) -> dict[str, Any]:
    """A status of a non-template message (Meta's category ``service``, PMP)."""
    return p.status(wamid, state, t, user, category="service", model="PMP", pricing_type=ptype)


def template(
    wamid: str, t: int, category: str, user: str = p.USER, ptype: str | None = "regular"
) -> dict[str, Any]:
    return p.status(wamid, "delivered", t, user, category=category, model="PMP",
                    pricing_type=ptype)  # fmt: skip


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[World]:
    client = redis.Redis.from_url(redis_url)
    found = World(client, write_config(tmp_path / "config"))
    try:
        yield found
    finally:
        found.wipe()
        client.close()

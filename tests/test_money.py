"""Money on records through the real apply script: tiers, markup, currencies, dates, re-rating.

Each test builds a small configuration directory, applies events through the Ledger against a
real Redis, and reads the records and usage back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.config_files import load_ratebook
from processor.core.events import Event, Inbound, Pair, Pricing, Status
from processor.store.keys import Keys
from processor.store.queries import Queries
from processor.store.rerate import Rerater
from tests.ledger_helpers import PHONE, WABA, make_ledger, snapshot, write_config

DAY = 86_400
NOV_2025 = 1_762_000_000 + 9 * DAY  # pmp-2025-07, mid-month UTC


@pytest.fixture
def world(redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = redis.Redis.from_url(redis_url)
    prefix = "money" + secrets.token_hex(4)
    yield {"client": client, "prefix": prefix, "config": write_config(tmp_path / "config")}
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def template(n: int, t: int, category: str = "utility", user: str | None = None,
             waba: str = WABA, phone: str = PHONE) -> Status:  # fmt: skip
    pair = Pair(waba, phone, user or f"55119{n:08d}")
    return Status(pair, f"wamid.{n:04d}", "delivered", t, None, Pricing(True, "PMP", category))


def apply(world: dict[str, Any], events: list[Event], limit: int = 1000) -> None:
    make_ledger(world["client"], world["prefix"], world["config"], limit=limit).apply(events)


def records(world: dict[str, Any], month: str, waba: str = WABA) -> list[dict[str, Any]]:
    found = Queries(world["client"], Keys(world["prefix"])).records(waba, month)
    return sorted(found, key=lambda r: (r["charge_time"], r["wamid"]))


def usage(world: dict[str, Any], month: str, waba: str = WABA, cur: str = "USD") -> Any:
    return Queries(world["client"], Keys(world["prefix"])).usage(waba, month, cur)


class TestVolumeTiers:
    """Marginal tiers: the k-th charged message of the month is in the tier from < k <= to."""

    def test_marginal_tiers_at_their_exact_boundaries(self, world: dict[str, Any]) -> None:
        apply(world, [template(n, NOV_2025 + n) for n in range(1, 6)])
        got = [(r["rate"], r["tier"]) for r in records(world, "2025-11")]
        assert got == [("0.0068", "1:2"), ("0.0068", "1:2"), ("0.0060", "3:4"),
                       ("0.0060", "3:4"), ("0.0050", "5:")]  # fmt: skip

    def test_a_late_earlier_message_pushes_the_boundary_unit_into_the_next_tier(
        self, world: dict[str, Any]
    ) -> None:
        """The unit pushed across a boundary is emitted again: same record_id, new version."""
        apply(world, [template(n, NOV_2025 + 10 * n) for n in range(1, 5)])
        before = {r["wamid"]: r for r in records(world, "2025-11")}
        apply(world, [template(9, NOV_2025 + 1)])  # delivered before all of them
        after = {r["wamid"]: r for r in records(world, "2025-11")}
        assert after["wamid.0009"]["rate"] == "0.0068"
        assert after["wamid.0002"]["rate"] == "0.0060" and before["wamid.0002"]["rate"] == "0.0068"
        assert after["wamid.0002"]["version"] == before["wamid.0002"]["version"] + 1
        assert after["wamid.0004"]["rate"] == "0.0050"
        assert usage(world, "2025-11")["total_cost"] == "0.0306"

    def test_only_charged_messages_count_towards_tiers(self, world: dict[str, Any]) -> None:
        """A utility template inside the customer service window is free and takes no place."""
        user = "5511900000077"
        inbound = Inbound(Pair(WABA, PHONE, user), "wamid.in", NOV_2025, "text", False)
        free = template(1, NOV_2025 + 60, user=user)
        apply(world, [inbound, free, *(template(n, NOV_2025 + 100 + n) for n in range(2, 5))])
        got = [(r["wamid"], r["free_reason"], r["tier"]) for r in records(world, "2025-11")]
        assert got == [("wamid.0001", "free_customer_service", None),
                       ("wamid.0002", None, "1:2"), ("wamid.0003", None, "1:2"),
                       ("wamid.0004", None, "3:4")]  # fmt: skip


def write(config: Path, name: str, text: str) -> None:
    (config / name).write_text(text)


def test_markup_is_added_exactly_to_billed_cost(world: dict[str, Any]) -> None:
    write(world["config"], "markup.csv", f"waba_id,percent,fixed_per_unit\n{WABA},12.5,0.0003\n")
    apply(world, [template(1, NOV_2025, "marketing")])
    [rec] = records(world, "2025-11")
    assert rec["cost"] == "0.0625"
    assert Decimal(rec["billed_cost"]) == Decimal("0.0625") * Decimal("1.125") + Decimal("0.0003")
    assert usage(world, "2025-11")["total_billed_cost"] == rec["billed_cost"]


def test_two_currencies(world: dict[str, Any]) -> None:
    """Each WABA is billed in its own currency, from the rate card of that currency."""
    other = "310000000000002"
    write(world["config"], "wabas.csv",
          f"waba_id,currency,timezone,portfolio_id\n{other},BRL,America/Sao_Paulo,\n")  # fmt: skip
    rates = (world["config"] / "rates.csv").read_text() + "2020-01-01,Brazil,BRL,marketing,0.3125\n"
    write(world["config"], "rates.csv", rates)
    apply(
        world,
        [
            template(1, NOV_2025, "marketing"),
            template(2, NOV_2025, "marketing", waba=other, phone="420000000000003"),
        ],
    )
    [usd] = records(world, "2025-11")
    [brl] = records(world, "2025-11", waba=other)
    assert (usd["currency"], usd["cost"]) == ("USD", "0.0625")
    assert (brl["currency"], brl["cost"]) == ("BRL", "0.3125")
    assert usage(world, "2025-11", other, "BRL")["total_cost"] == "0.3125"


def test_rate_change_on_the_first_in_a_non_utc_waba_crossing_midnight(
    world: dict[str, Any],
) -> None:
    """A delivery at 2026-09-30T19:00Z is 2026-10-01 00:30 in Kolkata: October's rate, month."""
    write(world["config"], "wabas.csv",
          f"waba_id,currency,timezone,portfolio_id\n{WABA},USD,Asia/Kolkata,\n")  # fmt: skip
    rates = (world["config"] / "rates.csv").read_text() + "2026-10-01,Brazil,USD,marketing,0.0700\n"
    write(world["config"], "rates.csv", rates)
    before_midnight = 1_790_791_200 - 3_600  # 2026-09-30T17:00Z = 22:30 in Kolkata
    after_midnight = 1_790_791_200 + 3_600  # 2026-09-30T19:00Z = 2026-10-01 00:30 in Kolkata
    apply(world, [template(1, before_midnight, "marketing"),
                  template(2, after_midnight, "marketing")])  # fmt: skip
    [september] = records(world, "2026-09")
    [october] = records(world, "2026-10")
    assert (september["cost"], september["billing_month"]) == ("0.0625", "2026-09")
    assert (october["cost"], october["billing_month"]) == ("0.0700", "2026-10")
    assert october["policy"] == "pmp-2026-10"


def test_month_total_equals_the_sum_of_its_records(world: dict[str, Any]) -> None:
    events = [template(n, NOV_2025 + n, ("marketing", "utility", "authentication")[n % 3])
              for n in range(1, 40)]  # fmt: skip
    apply(world, events)
    recs = records(world, "2025-11")
    total = sum((Decimal(r["cost"]) for r in recs), Decimal(0))
    assert usage(world, "2025-11")["total_cost"] == format(total, "f")
    assert usage(world, "2025-11")["units"] == len(recs) == 39


def test_rerating_after_a_corrected_file(world: dict[str, Any]) -> None:
    """Re-rating recomputes money from the stored records; running it twice changes nothing."""
    apply(world, [template(n, NOV_2025 + n, "marketing") for n in range(1, 4)]
          + [template(n, NOV_2025 + n, "utility") for n in range(4, 9)])  # fmt: skip
    assert usage(world, "2025-11")["total_cost"] == "0.2181"
    rates = (
        (world["config"] / "rates.csv").read_text().replace("marketing,0.0625", "marketing,0.0600")
    )
    write(world["config"], "rates.csv", rates)
    tiers = (world["config"] / "tiers.csv").read_text().replace("4,,0.0050", "4,,0.0040")
    write(world["config"], "tiers.csv", tiers)
    rerater = Rerater(world["client"], Keys(world["prefix"]),
                      load_ratebook(world["config"]), 10_000)  # fmt: skip
    result = rerater.rerate("2025-11")
    assert result.changed == 4  # three marketing + the utility in the last tier
    assert usage(world, "2025-11")["total_cost"] == "0.2096"
    snap = snapshot(world["client"], world["prefix"])
    assert rerater.rerate("2025-11").changed == 0
    assert snapshot(world["client"], world["prefix"]) == snap
    versions = {r["wamid"]: r["version"] for r in records(world, "2025-11")}
    assert versions["wamid.0001"] == 2 and versions["wamid.0004"] == 1
    # a late event after re-rating is priced with the corrected tier table
    apply(world, [template(20, NOV_2025 + 50, "utility")])
    assert records(world, "2025-11")[-1]["rate"] == "0.0040"


def test_allowance_1000th_unit_is_free_and_the_1001st_is_charged(world: dict[str, Any]) -> None:
    """pmp-2026-10: the first 1,000 delivered service messages per number and month are free."""
    oct_2026 = 1_790_812_800 + 5 * DAY
    service = [template(n, oct_2026 + n, "service") for n in range(1, 1002)]
    apply(world, service)
    recs = records(world, "2026-10")
    assert [r["free_reason"] for r in recs[998:]] == ["free_tier", "free_tier", None]
    assert recs[1000]["billable"] is True and recs[1000]["cost"] == "0.0068"
    apply(world, [template(5000, oct_2026, "service")])  # a late one, earliest of the month
    recs = {r["wamid"]: r for r in records(world, "2026-10")}
    assert recs["wamid.5000"]["free_reason"] == "free_tier"
    assert recs["wamid.1000"]["billable"] is True and recs["wamid.1000"]["version"] == 2
    assert usage(world, "2026-10")["total_cost"] == "0.0136"


def test_allowance_renews_each_month_and_does_not_accumulate(world: dict[str, Any]) -> None:
    """Free allowances renew each month and do not accumulate."""
    oct_2026 = 1_790_812_800 + 5 * DAY
    nov_2026 = oct_2026 + 31 * DAY
    apply(world, [template(n, oct_2026 + n, "service") for n in range(1, 4)]
          + [template(n, nov_2026 + n, "service") for n in range(4, 8)], limit=2)  # fmt: skip
    october = [r["free_reason"] for r in records(world, "2026-10")]
    november = [r["free_reason"] for r in records(world, "2026-11")]
    assert october == ["free_tier", "free_tier", None]
    assert november == ["free_tier", "free_tier", None, None]


def test_allowance_month_ends_at_midnight_in_the_waba_time_zone(world: dict[str, Any]) -> None:
    """cbp-2023: a service conversation at 22:00 on Nov 30 in São Paulo (01:00Z Dec 1) counts
    towards November's allowance, not December's."""
    write(world["config"], "wabas.csv",
          f"waba_id,currency,timezone,portfolio_id\n{WABA},USD,America/Sao_Paulo,\n")  # fmt: skip
    dec_1_utc = 1_701_388_800  # 2023-12-01T00:00Z = 2023-11-30 21:00 in São Paulo
    times = [dec_1_utc - 5 * DAY, dec_1_utc - 4 * DAY, dec_1_utc + 3_600, dec_1_utc + 4 * 3_600]
    events = [template(n, t, "service") for n, t in enumerate(times, 1)]
    apply(world, events, limit=2)
    november = [(r["wamid"], r["free_reason"]) for r in records(world, "2023-11")]
    december = [(r["wamid"], r["free_reason"]) for r in records(world, "2023-12")]
    assert november == [("wamid.0001", "free_tier"), ("wamid.0002", "free_tier"),
                        ("wamid.0003", None)]  # fmt: skip
    assert december == [("wamid.0004", "free_tier")]
    assert {r["policy"] for r in records(world, "2023-11")} == {"cbp-2023"}


def conversation(n: int, t: int, category: str) -> Status:
    """A delivered CBP template (no Meta conversation id: the window model opens it)."""
    pair = Pair(WABA, PHONE, f"55119{n:08d}")
    return Status(pair, f"wamid.{n:04d}", "delivered", t, None, Pricing(True, "CBP", category))


@pytest.mark.parametrize(
    ("moment", "category", "month", "policy"),
    [
        (1_654_041_600 + 2 * DAY, "business_initiated", "2022-06", "cbp-2022"),
        (1_700_000_000 - 10 * DAY, "service", "2023-11", "cbp-2023"),
    ],
    ids=["cbp-2022-any-conversation", "cbp-2023-service"],
)
def test_waba_allowance_1000th_conversation_is_free_and_the_1001st_is_charged(
    world: dict[str, Any], moment: int, category: str, month: str, policy: str
) -> None:
    """cbp-2022: the first 1,000 conversations per WABA and month are free; cbp-2023: the
    first 1,000 service conversations."""
    apply(world, [conversation(n, moment + n, category) for n in range(1, 1002)])
    recs = records(world, month)
    assert {r["policy"] for r in recs} == {policy}
    assert [r["free_reason"] for r in recs[998:]] == ["free_tier", "free_tier", None]
    assert recs[1000]["billable"] is True
    assert usage(world, month)["units"] == 1001


def test_cbp_2023_templates_never_use_the_allowance(world: dict[str, Any]) -> None:
    """Marketing, utility and authentication conversations are never free under cbp-2023."""
    moment = 1_700_000_000 - 10 * DAY
    templates = enumerate(["marketing", "utility", "authentication"], 1)
    apply(world, [conversation(n, moment + n, c) for n, c in templates])
    assert [r["billable"] for r in records(world, "2023-11")] == [True, True, True]

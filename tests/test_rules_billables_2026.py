"""Rule book 10 (other billables of late 2026) and 9.5 (FEP length), through the real pipeline:
webhook bodies -> parse -> the ledger on a real Redis -> records."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import redis

from processor.config_files import load_ratebook
from processor.core.policies import GENERAL_PURPOSE_AI
from tests import payloads as p
from tests.oct2026_helpers import MAX_PRICE, P5, World, template, world, write_config
from tests.rules_helpers import H, ts

__all__ = ["world"]  # the fixture
NOV = "2026-11"
SHIPPED = Path(__file__).resolve().parent.parent / "config"


# -- marketing_lite with max price -------------------------------------------------------------


def test_marketing_lite_of_a_max_price_waba_is_an_upper_bound(world: World) -> None:
    """Max price: no webhook carries the final (possibly lower) price, so a marketing_lite unit
    of a WABA flagged max_price_enabled is priced at its list rate, marked estimate upper_bound."""
    t = ts("2026-11-10T10:00")
    world.post([template("wamid.lite", t, "marketing_lite")], phone=P5, waba=MAX_PRICE)
    world.post([template("wamid.mkt", t + 60, "marketing")], phone=P5, waba=MAX_PRICE)
    lite, mkt = (world.record(w, NOV, MAX_PRICE) for w in ("wamid.lite", "wamid.mkt"))
    assert (lite["rate"], lite["cost"], lite["estimate"]) == ("0.0625", "0.0625", "upper_bound")
    assert (mkt["cost"], mkt["estimate"]) == ("0.0625", None)


def test_marketing_lite_without_max_price_is_exact(world: World) -> None:
    """A WABA not flagged (the column is optional, default false) gets no estimate mark."""
    world.post([template("wamid.lite", ts("2026-11-10T10:00"), "marketing_lite")])
    rec = world.record("wamid.lite", NOV)
    assert (rec["cost"], rec["estimate"]) == ("0.0625", None)


def test_a_free_marketing_lite_unit_is_no_estimate(world: World) -> None:
    """Inside an FEP the unit is free (referral_conversion): nothing to bound."""
    t = ts("2026-11-10T10:00")
    world.post(messages=[p.inbound("wamid.ad", t, referral=True)], phone=P5, waba=MAX_PRICE)
    lite = template("wamid.lite", t + 60, "marketing_lite", ptype="free_entry_point")
    world.post([lite], phone=P5, waba=MAX_PRICE)
    rec = world.record("wamid.lite", NOV, MAX_PRICE)
    assert (rec["billable"], rec["free_reason"], rec["estimate"]) == (
        False,
        "free_entry_point",
        None,
    )


# -- general_purpose_ai ------------------------------------------------------------------------


def test_general_purpose_ai_is_unrated_without_a_configured_rate(world: World) -> None:
    """AI Providers policy: charged per delivered message, but Meta publishes no rate; without
    a configured one the unit is kept unrated (rate null) and listed."""
    world.post([template("wamid.ai", ts("2026-11-11T10:00"), GENERAL_PURPOSE_AI)])
    rec = world.record("wamid.ai", NOV)
    assert (rec["category"], rec["billable"], rec["rate"], rec["cost"]) == (
        GENERAL_PURPOSE_AI,
        True,
        None,
        None,
    )
    usage = world.usage(NOV)
    assert usage["unrated"] == [
        {"category": GENERAL_PURPOSE_AI, "market": "Brazil", "currency": "USD", "count": 1}
    ]
    assert world.allowance_used(NOV) == 0


def test_general_purpose_ai_is_priced_from_configured_rates(redis_url: str, tmp_path: Path) -> None:
    """A rates.csv row of category general_purpose_ai (per market, dated like every rate)
    prices it; it uses no allowance and no tier, and is charged inside the CSW too."""
    test_rate = "2026-01-01,Brazil,USD,general_purpose_ai,0.0500\n"  # a test's own figure
    client = redis.Redis.from_url(redis_url)
    world = World(client, write_config(tmp_path / "config", extra_rates=test_rate))
    try:
        t = ts("2026-11-11T10:00")
        world.post(messages=[p.inbound("wamid.in", t)])
        world.post([template("wamid.ai", t + H, GENERAL_PURPOSE_AI)])
        rec = world.record("wamid.ai", NOV)
        assert (rec["billable"], rec["rate"], rec["cost"], rec["tier"]) == (
            True,
            "0.0500",
            "0.0500",
            None,
        )
        assert world.usage(NOV)["unrated_units"] == 0
        assert world.allowance_used(NOV) == 0
    finally:
        world.wipe()
        client.close()


def test_the_shipped_config_invents_no_general_purpose_ai_rate() -> None:
    """Never invent a price: Meta publishes no general_purpose_ai column; none is shipped."""
    assert GENERAL_PURPOSE_AI not in (SHIPPED / "rates.csv").read_text()
    book = load_ratebook(SHIPPED)
    assert book.rate("Italy", GENERAL_PURPOSE_AI, "EUR", date(2026, 11, 1)) is None
    assert book.rate("Italy", GENERAL_PURPOSE_AI, "USD", date(2026, 11, 1)) is None


# -- FEP length (9.5) --------------------------------------------------------------------------


def test_fep_length_is_metas_expiration_timestamp_when_given(world: World) -> None:
    """Meta's conversation.expiration_timestamp on the FEP's ``sent`` is the window's end (a
    7-day window here): a reply on day 5 is still free."""
    t = ts("2026-11-02T10:00")
    world.post(messages=[p.inbound("wamid.ad", t, referral=True)])
    first = p.status(
        "wamid.r1",
        "sent",
        t + 300,
        category="service",
        model="PMP",
        pricing_type="free_entry_point",
        conversation_id="fep-1",
        expires=t + 300 + 7 * 24 * H,
        origin="referral_conversion",
    )
    world.post([first, template("wamid.r1", t + 305, "service", ptype="free_entry_point")])
    world.post([template("wamid.r2", t + 5 * 24 * H, "service", ptype=None)])
    later = world.record("wamid.r2", NOV)
    assert (later["category"], later["free_reason"], later["source"]) == (
        "referral_conversion",
        "free_entry_point",
        "derived",
    )
    assert world.allowance_used(NOV) == 0


def test_fep_length_defaults_to_72_hours(world: World) -> None:
    """Without Meta's expiration the policy's 72 h applies: a reply 73 h later is outside the
    window (a service unit of the allowance)."""
    t = ts("2026-11-02T10:00")
    world.post(messages=[p.inbound("wamid.ad", t, referral=True)])
    world.post([template("wamid.r1", t + 300, "service", ptype=None)])
    world.post([template("wamid.r2", t + 300 + 73 * H, "service", ptype=None)])
    first, later = world.record("wamid.r1", NOV), world.record("wamid.r2", NOV)
    assert (first["category"], first["free_reason"]) == ("referral_conversion", "free_entry_point")
    assert (later["category"], later["free_reason"]) == ("service", "free_tier")
    assert world.allowance_used(NOV) == 1

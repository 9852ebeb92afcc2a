"""One rule for pricing a unit at its place, two implementations (processor/core/pricing.py and
the apply script's pricing.lua), one table of cases (tests/data/pricing_cases.json)."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.core.pricing import Place, allowance_places, bounds, price_at, tier_places
from processor.core.rating import Tier

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "pricing_cases.json").read_text()
)
PRICING_LUA = resources.files("processor.store").joinpath("lua/pricing.lua").read_text()
DRIVER = """
local out = {}
for i, case in ipairs(cjson.decode(ARGV[1])) do
  local rec = {list_rate = case.list_rate, list_billed_rate = case.list_billed_rate,
               rule_free_reason = case.rule_free_reason, meta_in_tier = case.meta_in_tier,
               rule_discrepancy = case.rule_discrepancy}
  price_at(rec, case.places, case.position)
  out[i] = {rec.billable, rec.free_reason, rec.rate, rec.billed_rate, rec.tier, rec.cost,
            rec.billed_cost, rec.discrepancy or cjson.null}
end
return cjson.encode(out)
"""
MISMATCH = "service_allowance_mismatch"  # rule book 9.3: Meta's free-tier answer differs
FIELDS = ("billable", "free_reason", "rate", "billed_rate", "tier", "cost", "billed_cost")


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def test_the_table_of_cases_covers_every_kind_of_place() -> None:
    assert len(CASES) >= 15
    assert {c["name"] for c in CASES} and len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_prices_every_case_of_the_table(case: dict[str, Any]) -> None:
    places = tuple(Place.from_doc(d) for d in case["places"])
    priced = price_at(
        places,
        case["position"],
        _decimal(case["list_rate"]),
        _decimal(case["list_billed_rate"]),
        case["rule_free_reason"],
        case.get("meta_in_tier"),
    )
    assert priced.fields() == case["expect"]
    assert priced.mismatch == (MISMATCH in (case.get("expect_discrepancy") or ""))


def test_lua_prices_every_case_of_the_table(redis_url: str) -> None:
    """The apply script's pricing, run in real Redis on the same cases."""
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.eval(PRICING_LUA + DRIVER, 0, json.dumps(CASES))  # type: ignore[no-untyped-call]
    finally:
        client.close()
    got = json.loads(raw)
    for case, row in zip(CASES, got, strict=True):
        as_dict = dict(zip((*FIELDS, "discrepancy"), row, strict=True))
        discrepancy = as_dict.pop("discrepancy")
        assert as_dict == case["expect"], case["name"]
        assert discrepancy == case.get("expect_discrepancy"), case["name"]


def test_a_place_round_trips_through_its_json_form() -> None:
    tiers = (
        Tier(0, 100_000, Decimal("0.0014"), Decimal("0.00154")),
        Tier(100_000, None, Decimal("0.0012"), Decimal("0.00132")),
    )
    places = tier_places(tiers)
    assert tuple(Place.from_doc(json.loads(json.dumps(p.doc()))) for p in places) == places
    assert places[0].label == "1:100000" and places[1].label == "100001:"


def test_bounds_are_the_bounded_places_in_order() -> None:
    assert bounds(allowance_places(1000, "free_tier")) == [1000]
    places = (Place(4), Place(2), Place(None))
    assert bounds(places) == [2, 4]

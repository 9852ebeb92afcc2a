"""Reconciliation rules (pure core): keys, pricing types, statuses, tolerance, zones, tiers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.analytics import MetaPoint, parse_pages
from processor.core.reconcile import (
    Inputs,
    Tolerance,
    month_bounds,
    parse_tolerance,
    pricing_type_of,
    reconcile,
)

UTC = ZoneInfo("UTC")
PHOENIX = ZoneInfo("America/Phoenix")  # UTC-7 all year
KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+5:30
NOV_1 = 1_761_955_200  # 2025-11-01T00:00Z
DAY = 86_400
PHONE_ID, DISPLAY = "420000000000002", "5511900000000"


def record(at: int, **fields: Any) -> dict[str, Any]:
    from datetime import UTC as _UTC
    from datetime import datetime

    base = {
        "record_id": f"r{at}",
        "phone_number_id": PHONE_ID,
        "country": "BR",
        "market": "Brazil",
        "category": "marketing",
        "billable": True,
        "free_reason": None,
        "policy": "pmp-2025-07",
        "cost": "0.0625",
        "tier": None,
        "void": False,
        "charge_time": datetime.fromtimestamp(at, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return {**base, **fields}


def pt(start: int, volume: int = 1, cost: str | None = "0.0625", **kw: Any) -> MetaPoint:
    """A data point as Meta sends it (upper-case values), read through the parser."""
    raw: dict[str, Any] = {
        "start": start,
        "end": start + DAY,
        "phone_number": kw.pop("phone", DISPLAY),
        "country": "BR",
        "pricing_category": "MARKETING",
        "pricing_type": "REGULAR",
        "volume": volume,
    }
    raw.update({("pricing_category" if k == "category" else k): v for k, v in kw.items()})
    if cost is not None:
        raw["cost"] = Decimal(cost)
    (point,) = parse_pages([{"data": [{"data_points": [raw]}]}]).points
    return point


def run(points: list[MetaPoint], records: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "waba_id": "1",
        "month": "2025-11",
        "currency": "USD",
        "tz": UTC,
        "fetched_at": NOV_1 + 40 * DAY,
        "now": NOV_1 + 40 * DAY,
        "tolerance": Tolerance(),
        "points": points,
        "records": records,
        "display_numbers": {PHONE_ID: DISPLAY},
    }
    args.update(kw)
    return reconcile(Inputs(**args))


def statuses(result: dict[str, Any]) -> list[str]:
    return [line["status"] for line in result["lines"]]


# -- pricing types (rule book §9.3) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"billable": True}, "REGULAR"),
        ({"billable": False, "free_reason": "free_customer_service"}, "FREE_CUSTOMER_SERVICE"),
        ({"billable": False, "free_reason": "free_entry_point"}, "FREE_ENTRY_POINT"),
        (
            {"billable": False, "free_reason": "free_tier", "policy": "pmp-2026-10",
             "category": "service"},
            "FREE_CUSTOMER_SERVICE",
        ),
        (
            {"billable": False, "free_reason": "free_tier", "policy": "pmp-2026-10",
             "category": "group_service"},
            "FREE_GROUP_CUSTOMER_SERVICE",
        ),
        (
            {"billable": False, "free_reason": "free_customer_service",
             "category": "group_utility"},
            "FREE_GROUP_CUSTOMER_SERVICE",
        ),
        ({"billable": False, "free_reason": "free_tier", "policy": "cbp-2023"}, "FREE_TIER"),
    ],
    ids=["billable", "csw", "fep", "service-allowance", "group-allowance", "group-csw", "cbp"],
)  # fmt: skip
def test_pricing_type_of_our_records_follows_rule_book_9_3(
    fields: dict[str, Any], expected: str
) -> None:
    assert pricing_type_of(record(NOV_1, **fields)) == expected


# -- statuses ------------------------------------------------------------------------------------


def test_equal_volume_and_cost_is_match() -> None:
    result = run([pt(NOV_1)], [record(NOV_1 + 60)])
    assert statuses(result) == ["match"]
    line = result["lines"][0]
    assert (line["phone_number_id"], line["display_phone_number"]) == (PHONE_ID, DISPLAY)
    assert (line["category"], line["pricing_type"], line["country"]) == (
        "marketing",
        "REGULAR",
        "BR",
    )


def test_volume_is_compared_exactly() -> None:
    result = run([pt(NOV_1, volume=2, cost="0.1250")], [record(NOV_1 + 60)])
    assert statuses(result) == ["volume_diff"]


def test_cost_outside_the_tolerance_is_cost_diff() -> None:
    result = run([pt(NOV_1, cost="0.0900")], [record(NOV_1 + 60)])
    assert statuses(result) == ["cost_diff"]


def test_cost_within_the_tolerance_is_match() -> None:
    result = run([pt(NOV_1, cost="0.0700")], [record(NOV_1 + 60)])  # 0.0075 < 0.01
    assert statuses(result) == ["match"]


def test_missing_cost_is_cost_unavailable_and_total_unknown() -> None:
    result = run([pt(NOV_1, cost=None)], [record(NOV_1 + 60)])
    assert statuses(result) == ["cost_unavailable"]
    assert result["lines"][0]["meta_cost"] is None
    assert result["totals"]["meta_cost"] is None


def test_a_line_only_meta_reports_is_only_meta() -> None:
    assert statuses(run([pt(NOV_1)], [])) == ["only_meta"]


def test_a_line_only_we_have_is_only_ours() -> None:
    assert statuses(run([], [record(NOV_1 + 60)])) == ["only_ours"]


def test_our_unrated_unit_is_a_cost_diff_never_a_guess() -> None:
    result = run([pt(NOV_1)], [record(NOV_1 + 60, cost=None)])
    assert statuses(result) == ["cost_diff"]
    assert result["lines"][0]["ours_cost"] is None
    assert result["totals"]["ours_cost"] is None


def test_void_records_do_not_count() -> None:
    assert statuses(run([pt(NOV_1)], [record(NOV_1 + 60), record(NOV_1 + 61, void=True)])) == [
        "match"
    ]


def test_points_split_by_tier_are_summed_per_key() -> None:
    points = [
        pt(NOV_1, volume=1, cost="0.0068", category="utility", tier="0:750000"),
        pt(NOV_1, volume=1, cost="0.0060", category="utility", tier="750001:2000000"),
    ]
    ours = [
        record(NOV_1 + 1, category="utility", cost="0.0068"),
        record(NOV_1 + 2, category="utility", cost="0.0060"),
    ]
    result = run(points, ours)
    assert statuses(result) == ["match"]
    assert result["lines"][0]["meta_cost"] == "0.0128"


def test_unknown_pricing_type_and_category_are_carried_through() -> None:
    result = run([pt(NOV_1, pricing_type="FREE_AGENT_TRIAL", category="BUSINESS_AGENT")], [])
    line = result["lines"][0]
    assert (line["pricing_type"], line["category"], line["status"]) == (
        "FREE_AGENT_TRIAL",
        "business_agent",
        "only_meta",
    )


def test_unknown_display_number_keeps_the_display_and_no_id() -> None:
    result = run([pt(NOV_1, phone="+1 555 000 1111")], [])
    line = result["lines"][0]
    assert (line["phone_number_id"], line["display_phone_number"]) == (None, "15550001111")


def test_lines_are_sorted_by_day_number_country_category_type() -> None:
    ours = [
        record(NOV_1 + DAY + 5, category="utility", cost="0.0068"),
        record(NOV_1 + 5, country="IN", cost="0.0107"),
        record(NOV_1 + 6),
        record(NOV_1 + 7, billable=False, free_reason="free_customer_service", category="utility",
               cost="0"),
    ]  # fmt: skip
    keys = [
        (x["day"], x["phone_number_id"], x["country"], x["category"], x["pricing_type"])
        for x in run([], ours)["lines"]
    ]
    assert keys == sorted(keys)
    assert len(keys) == 4


def test_totals_add_up_the_lines() -> None:
    result = run([pt(NOV_1, volume=2, cost="0.125")], [record(NOV_1 + 1), record(NOV_1 + 2)])
    assert result["totals"] == {
        "ours_volume": 2,
        "meta_volume": 2,
        "ours_cost": "0.1250",
        "meta_cost": "0.125",
    }


# -- tolerance -----------------------------------------------------------------------------------


def test_default_tolerance_is_one_cent_or_half_a_percent_whichever_is_larger() -> None:
    tolerance = Tolerance()
    assert tolerance.allows(Decimal("1.01"), Decimal("1.00"))
    assert not tolerance.allows(Decimal("1.02"), Decimal("1.00"))
    assert tolerance.allows(Decimal("1004.9"), Decimal("1000"))  # 0.5 % of 1000 = 5
    assert not tolerance.allows(Decimal("1005.1"), Decimal("1000"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.01,0.5%", Tolerance(Decimal("0.01"), Decimal("0.5"))),
        ("0.02", Tolerance(Decimal("0.02"), Decimal(0))),
        ("1%", Tolerance(Decimal(0), Decimal("1"))),
    ],
)
def test_tolerance_setting_is_parsed(raw: str, expected: Tolerance) -> None:
    assert parse_tolerance(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1,2,3", "x%", "NaN"])
def test_bad_tolerance_setting_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_tolerance(raw)


# -- the month and the days in the WABA's zone ---------------------------------------------------


def test_month_bounds_are_local_midnights_utc_minus_7() -> None:
    start, end = month_bounds("2025-11", PHOENIX)
    assert start == NOV_1 + 7 * 3600
    assert end == 1_764_547_200 + 7 * 3600  # 2025-12-01T07:00Z


def test_month_bounds_are_local_midnights_utc_plus_5_30() -> None:
    start, _ = month_bounds("2025-11", KOLKATA)
    assert start == NOV_1 - 5 * 3600 - 1800


@pytest.mark.parametrize(
    ("tz", "at", "day"),
    [
        (PHOENIX, NOV_1 + 7 * 3600 - 1, None),  # 2025-10-31 23:59:59 local: not November
        (PHOENIX, NOV_1 + 7 * 3600, "2025-11-01"),
        (KOLKATA, NOV_1 - 19_800 - 1, None),
        (KOLKATA, NOV_1 - 19_800, "2025-11-01"),
        (KOLKATA, NOV_1 + DAY - 19_800 - 1, "2025-11-01"),
        (KOLKATA, NOV_1 + DAY - 19_800, "2025-11-02"),
    ],
    ids=["phx-before", "phx-midnight", "ist-before", "ist-midnight", "ist-last", "ist-next"],
)
def test_days_are_local_days_of_the_waba(tz: ZoneInfo, at: int, day: str | None) -> None:
    """Meta's daily buckets start at the WABA's local midnight; ours are keyed the same."""
    result = run([pt(at)], [record(at)], tz=tz)
    if day is None:
        assert result["lines"] == []
    else:
        assert [(x["day"], x["status"]) for x in result["lines"]] == [(day, "match")]


# -- provisional ---------------------------------------------------------------------------------


def test_days_ending_within_48_hours_are_provisional() -> None:
    now = NOV_1 + 10 * DAY + 3600  # 2025-11-11T01:00Z
    result = run([pt(NOV_1 + d * DAY) for d in (7, 8, 9, 10)], [], now=now)
    assert [x["provisional"] for x in result["lines"]] == [False, True, True, True]


# -- Meta's pages --------------------------------------------------------------------------------


def test_pages_of_both_shapes_are_read_and_bad_points_skipped() -> None:
    first = {
        "pricing_analytics": {
            "data": [{"data_points": [{"start": NOV_1, "volume": 3, "cost": Decimal("0.1")}, 7]}],
            "paging": {},
        },
        "id": "1",
    }
    later = {"data": [{"data_points": [{"start": "bad"}, {"start": NOV_1, "volume": 1}]}]}
    parsed = parse_pages([first, later])
    assert [p.volume for p in parsed.points] == [3, 1]
    assert parsed.points[0].cost == Decimal("0.1")
    assert parsed.points[1].cost is None
    assert parsed.skipped == 2


# -- tiers ---------------------------------------------------------------------------------------


def test_tiers_show_meta_ours_and_tier_webhooks_side_by_side() -> None:
    points = [
        pt(NOV_1, category="utility", tier="0:750000", cost="0.0068"),
        pt(NOV_1 + DAY, category="utility", tier="750001:2000000", cost="0.0060"),
    ]
    ours = [record(NOV_1 + DAY + 1, category="utility", tier="750001:2000000", cost="0.006")]
    update = {
        "effective_month": "2025-11",
        "pricing_category": "UTILITY",
        "region": "BRAZIL",
        "tier": "750001:2000000",
        "tier_update_time": NOV_1 + DAY,
    }
    result = run(points, ours, market_of=lambda country, day: "Brazil", tier_updates=[update])
    assert result["tiers"] == [
        {
            "market": "Brazil",
            "category": "utility",
            "meta_tier": "750001:2000000",
            "ours_tier": "750001:2000000",
            "tier_updates": [update],
        }
    ]


# -- invariant -----------------------------------------------------------------------------------

LINE = st.tuples(
    st.integers(0, 29),  # day
    st.sampled_from(["BR", "IN", "DE"]),
    st.sampled_from(["marketing", "utility", "authentication"]),
    st.integers(1, 5),  # volume
    st.sampled_from(["0.0625", "0.0068", "0.0107", "0"]),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(LINE, max_size=12), tz=st.sampled_from([UTC, PHOENIX, KOLKATA]))
def test_meta_figures_built_from_our_records_always_match(
    lines: list[tuple[int, str, str, int, str]], tz: ZoneInfo
) -> None:
    """Invariant: when Meta reports exactly our units, every line is `match` and the totals
    agree; changing one point's volume makes exactly that line a `volume_diff`."""
    start, _ = month_bounds("2025-11", tz)
    records, points = [], []
    for day, country, category, volume, rate in lines:
        at = start + day * DAY + 3600
        records += [record(at, country=country, category=category, cost=rate)] * volume
        points.append(
            pt(at - 3600, volume=volume, cost=str(Decimal(rate) * volume), country=country,
               category=category)
        )  # fmt: skip
    result = run(points, records, tz=tz)
    assert set(statuses(result)) <= {"match"}
    assert result["totals"]["ours_volume"] == result["totals"]["meta_volume"]
    assert Decimal(result["totals"]["ours_cost"]) == Decimal(result["totals"]["meta_cost"])
    if points:
        first = points[0]
        points[0] = MetaPoint(**{**first.__dict__, "volume": first.volume + 1})
        changed = run(points, records, tz=tz)
        assert sorted(statuses(changed)).count("volume_diff") == 1

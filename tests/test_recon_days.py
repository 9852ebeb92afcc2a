"""Ours vs Meta per day (the dashboard's view of a stored reconciliation): lines added up per
day, statuses counted, an unknown cost never summed into a partial figure."""

from __future__ import annotations

from typing import Any

from processor.core.recon_days import per_day


def line(day: str, status: str, ours: int, meta: int, oc: str | None, mc: str | None,
         provisional: bool = False) -> dict[str, Any]:  # fmt: skip
    return {"day": day, "status": status, "ours_volume": ours, "meta_volume": meta,
            "ours_cost": oc, "meta_cost": mc, "provisional": provisional}  # fmt: skip


def test_lines_add_up_per_day_in_day_order_with_their_statuses() -> None:
    result = {
        "lines": [
            line("2026-08-02", "match", 3, 3, "0.1875", "0.1875"),
            line("2026-08-01", "volume_diff", 1, 2, "0.0625", "0.1250"),
            line("2026-08-01", "match", 2, 2, "0.0136", "0.0136"),
            line("2026-08-01", "match", 1, 1, "0", "0"),
            line("2026-08-02", "only_meta", 0, 1, "0", "0.0068", provisional=True),
        ]
    }
    first, second = per_day(result)
    assert first == {
        "day": "2026-08-01", "ours_volume": 4, "meta_volume": 5, "ours_cost": "0.0761",
        "meta_cost": "0.1386", "statuses": {"match": 2, "volume_diff": 1}, "differs": True,
        "provisional": False,
    }  # fmt: skip
    assert second["day"] == "2026-08-02" and second["statuses"] == {"match": 1, "only_meta": 1}
    assert (second["ours_cost"], second["meta_cost"]) == ("0.1875", "0.1943")
    assert second["differs"] and second["provisional"]


def test_a_day_with_an_unknown_cost_has_no_cost() -> None:
    lines = [line("2026-08-01", "cost_unavailable", 1, 1, "0.0625", None),
             line("2026-08-01", "match", 1, 1, "0.0625", "0.0625")]  # fmt: skip
    (day,) = per_day({"lines": lines})
    assert day["meta_cost"] is None and day["ours_cost"] == "0.1250"


def test_a_day_where_every_line_matches_does_not_differ() -> None:
    (day,) = per_day({"lines": [line("2026-08-01", "match", 1, 1, "0.0068", "0.0068")]})
    assert not day["differs"] and day["statuses"] == {"match": 1}


def test_no_lines_no_days() -> None:
    assert per_day({"lines": []}) == [] and per_day({}) == []

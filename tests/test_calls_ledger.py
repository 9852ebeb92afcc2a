"""Rule book §8.6, calls through the real pipeline: signed ``calls`` webhooks (the §8.3 shapes)
-> inbox -> drain -> ledger on a real Redis -> records and usage. Test ids are the book's.

Config owned by these tests, never shipped (§8.6 fixture, one parse of a Meta PDF, unconfirmed):
Rest of Central & Eastern Europe (+995 Georgia), USD per minute 0.0095 (0 to 50,000), 0.0076
(50,001 to 250,000), 0.0066 (250,001 to 1M). The message rates are test values too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from processor.context import Context
from tests import payloads as p
from tests.call_payloads import GEORGIA, call_status, calls_body, connect, terminate
from tests.conftest import auth, signed_headers
from workers.drain import drain, use_context

CEE = "Rest of Central & Eastern Europe"
W1, W2, PHONE2 = "310000000000011", "310000000000012", "420000000000012"
OTHER = "995591111111"  # another Georgian user (the bucket's earlier calls)
MINUTE = 60
CONFIG = {
    "markets.csv": f"effective_from,country,market\n2020-01-01,GE,{CEE}\n",
    "rates.csv": "effective_from,market,currency,category,rate\n"
    + "".join(
        f"2025-07-01,{CEE},USD,{c},{r}\n"
        for c, r in [
            ("marketing", "0.0860"),
            ("utility", "0.0200"),
            ("authentication", "0.0200"),
            ("service", "0.0200"),
        ]
    ),
    "calling_tiers.csv": (
        "effective_from,market,currency,from_minutes,to_minutes,rate_per_minute,source\n"
        f"2025-08-01,{CEE},USD,0,50000,0.0095,rule book 8.6 fixture\n"
        f"2025-08-01,{CEE},USD,50000,250000,0.0076,rule book 8.6 fixture\n"
        f"2025-08-01,{CEE},USD,250000,1000000,0.0066,rule book 8.6 fixture\n"
    ),
    "wabas.csv": (
        "waba_id,currency,timezone,portfolio_id\n"
        f"{W1},USD,UTC,portfolio-1\n{W2},USD,UTC,portfolio-1\n"
    ),
}


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("UTC")).timestamp())


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "calls-config"
    config.mkdir()
    for name, text in CONFIG.items():
        (config / name).write_text(text)
    return {**environ, "BILLING_CONFIG_DIR": str(config)}


def post(client: Any, doc: dict[str, Any]) -> None:
    body = p.raw(doc)
    reply = client.post("/webhook", data=body, headers=signed_headers(body))
    assert reply.status_code == 200 and reply.data == b"ok", reply.data


def deliver(client: Any, ctx: Context, *docs: dict[str, Any]) -> dict[str, int]:
    for doc in docs:
        post(client, doc)
    use_context(ctx)
    totals = drain()
    assert totals["quarantined"] == 0, ctx.quarantine
    return totals


def records(client: Any, month: str = "2026-11", waba: str = p.WABA) -> list[dict[str, Any]]:
    reply = client.get(f"/v1/records?waba_id={waba}&month={month}&limit=1000", headers=auth())
    assert reply.status_code == 200, reply.json
    return sorted(reply.json["records"], key=lambda r: (r["charge_time"], r["record_id"]))


def call(client: Any, call_id: str, month: str = "2026-11", waba: str = p.WABA) -> dict[str, Any]:
    [found] = [r for r in records(client, month, waba) if r.get("call_id") == call_id]
    return found


def usage(client: Any, month: str = "2026-11", waba: str = p.WABA) -> dict[str, Any]:
    reply = client.get(f"/v1/usage?waba_id={waba}&month={month}", headers=auth())
    assert reply.status_code == 200, reply.json
    return reply.json


def fill(
    minutes: Iterable[float], ends: int, waba: str = p.WABA, phone: str = p.PHONE
) -> dict[str, Any]:
    """Earlier BICs (one a day, ending before ``ends``) putting ``minutes`` in the bucket."""
    items = []
    for i, m in enumerate(minutes):
        seconds = int(D(str(m)) * MINUTE)
        end = ends - (i + 1) * 86_400
        items.append(terminate(f"wacid.fill-{waba}-{i}", end, seconds, user=OTHER))
    return calls_body(items, waba=waba, phone=phone)


def money(rec: dict[str, Any]) -> tuple[Any, ...]:
    return (rec["pulses"], rec["billed_minutes"], rec["tier"], rec["rate"], D(rec["cost"]))


NOV = at("2026-11-20T10:00")


# -- pulses and money (C-1 to C-3) -----------------------------------------------------------


def test_C_1_pulse_rounding_56_seconds_is_10_pulses(client: Any, ctx: Context) -> None:
    """A 56 s BIC is 9.33 pulses, counted as 10: 1.0 minute at 0.0095."""
    deliver(client, ctx, calls_body([terminate("wacid.c1", NOV, 56)]))
    rec = call(client, "wacid.c1")
    assert money(rec) == (10, "1.0", "0:50000", "0.0095", D("0.0095"))
    assert (rec["kind"], rec["category"], rec["direction"]) == (
        "call",
        "calling",
        "business_initiated",
    )
    assert (rec["billable"], rec["free_reason"], rec["source"]) == (True, None, "derived")
    assert (rec["market"], rec["country"], rec["currency"]) == (CEE, "GE", "USD")


def test_C_2_61_seconds_is_11_pulses(client: Any, ctx: Context) -> None:
    """61 s: 11 pulses, 1.1 minutes, 0.01045 (exact, no rounding per pulse)."""
    deliver(client, ctx, calls_body([terminate("wacid.c2", NOV, 61)]))
    assert money(call(client, "wacid.c2")) == (11, "1.1", "0:50000", "0.0095", D("0.01045"))


def test_C_3_durations_1_6_7(client: Any, ctx: Context) -> None:
    """1 s, 6 s, 7 s: 1, 1 and 2 pulses -> 0.00095, 0.00095, 0.0019."""
    items = [terminate(f"wacid.c3-{d}", NOV + d, d) for d in (1, 6, 7)]
    deliver(client, ctx, calls_body(items))
    found = [(r["duration_s"], r["pulses"], D(r["cost"])) for r in records(client)]
    assert found == [(1, 1, D("0.00095")), (6, 1, D("0.00095")), (7, 2, D("0.0019"))]


# -- what is charged (C-4, C-8 to C-11, C-18) ------------------------------------------------

MARCH = at("2026-03-16T10:00")  # pmp-2025-07: a utility template inside the CSW is free


def utility(wamid: str, t: int, user: str = GEORGIA) -> dict[str, Any]:
    """A delivered utility template without Meta's pricing.type (the model decides)."""
    return p.body(
        p.change(statuses=[p.status(wamid, "delivered", t, user=user, category="utility")])
    )


def message(client: Any, wamid: str, month: str) -> dict[str, Any]:
    [found] = [r for r in records(client, month) if r.get("wamid") == wamid]
    return found


def test_C_4_unanswered_bic_no_record_no_csw(client: Any, ctx: Context) -> None:
    """RINGING, REJECTED, terminate FAILED without a duration: no record, no CSW change (a
    utility template an hour later is charged)."""
    statuses = [
        call_status("wacid.c4", s, MARCH + i) for i, s in enumerate(("RINGING", "REJECTED"))
    ]
    deliver(
        client,
        ctx,
        calls_body(statuses=statuses),
        calls_body([terminate("wacid.c4", MARCH + 5, status="FAILED")]),
        utility("wamid.c4", MARCH + 3_600),
    )
    found = records(client, "2026-03")
    assert [r["kind"] for r in found] == ["message"]
    assert (found[0]["billable"], found[0]["free_reason"]) == (True, None)


def test_C_8_uic_is_free_and_does_not_accrue(client: Any, ctx: Context) -> None:
    """A UIC of 300 s: a free record (free_user_initiated, 50 pulses); the bucket is unchanged
    (a BIC after it is alone in it)."""
    deliver(
        client,
        ctx,
        calls_body([terminate("wacid.c8", NOV, 300, uic=True)]),
        calls_body([terminate("wacid.c8-bic", NOV + 600, 12)]),
    )
    rec = call(client, "wacid.c8")
    assert (rec["billable"], rec["free_reason"], rec["pulses"], rec["cost"]) == (
        False,
        "free_user_initiated",
        50,
        "0",
    )
    assert (rec["direction"], rec["user_id"]) == ("user_initiated", GEORGIA)
    assert call(client, "wacid.c8-bic")["tier_minutes_after"] == "0.2"


def test_C_9_failed_but_connected_is_charged(client: Any, ctx: Context) -> None:
    """terminate FAILED with start/end 20 s apart and duration 20: 4 pulses, 0.0038, FAILED."""
    deliver(client, ctx, calls_body([terminate("wacid.c9", NOV, 20, status="FAILED")]))
    rec = call(client, "wacid.c9")
    assert (rec["pulses"], D(rec["cost"]), rec["call_status"]) == (4, D("0.0038"), "FAILED")


def test_C_10_duplicate_terminate_posts_one_record(client: Any, ctx: Context) -> None:
    """The same terminate POST three times: one record, counted once (with its minutes)."""
    doc = calls_body([terminate("wacid.c10", NOV, 120)])
    totals = deliver(client, ctx, doc, doc, doc)
    assert totals["duplicates"] == 2
    found = records(client)
    assert [(r["call_id"], r["version"]) for r in found] == [("wacid.c10", 1)]
    [line] = usage(client)["lines"]
    assert (line["category"], line["count"], line["minutes"], line["cost"]) == (
        "calling",
        1,
        "2.0",
        "0.0190",
    )


def test_C_11_terminate_only_charges_and_opens_the_csw(client: Any, ctx: Context) -> None:
    """No connect, no status: a BIC terminate of 30 s is charged 5 pulses, and refreshes the CSW
    at its start_time (pmp-2025-07: a utility template 23 h later is free, 25 h later is not)."""
    end = MARCH + 30
    deliver(
        client,
        ctx,
        calls_body([terminate("wacid.c11", end, 30)]),
        utility("wamid.in", MARCH + 23 * 3_600),
        utility("wamid.edge", MARCH + 24 * 3_600 + 15),  # inside, were it opened at the end
        utility("wamid.out", MARCH + 25 * 3_600),
    )
    assert money(call(client, "wacid.c11", "2026-03")) == (
        5,
        "0.5",
        "0:50000",
        "0.0095",
        D("0.00475"),
    )
    assert message(client, "wamid.in", "2026-03")["free_reason"] == "free_customer_service"
    assert message(client, "wamid.out", "2026-03")["free_reason"] is None
    assert message(client, "wamid.edge", "2026-03")["free_reason"] is None  # from start_time


def test_C_18_duration_mismatch(client: Any, ctx: Context) -> None:
    """duration 120 while end - start = 100: duration wins (20 pulses), discrepancy noted."""
    deliver(client, ctx, calls_body([terminate("wacid.c18", NOV, 120, start=NOV - 100, end=NOV)]))
    rec = call(client, "wacid.c18")
    assert (rec["pulses"], rec["discrepancy"]) == (20, "call_duration_mismatch")
    assert rec["start_time"] == "2026-11-20T09:58:20Z" and rec["end_time"] == "2026-11-20T10:00:00Z"


# -- minute tiers (C-5 to C-7, C-12, C-17) ---------------------------------------------------


def test_C_5_tier_crossing_prices_the_whole_call(client: Any, ctx: Context) -> None:
    """Bucket at 49,999.5 min; a 120 s BIC ends at 50,001.5: the whole call at 0.0076."""
    deliver(
        client,
        ctx,
        fill([10_000] * 4 + [9_999.5], NOV),
        calls_body([terminate("wacid.c5", NOV, 120)]),
    )
    rec = call(client, "wacid.c5")
    assert money(rec) == (20, "2.0", "50001:250000", "0.0076", D("0.0152"))
    assert rec["tier_minutes_after"] == "50001.5"


def test_C_6_exact_bound_stays_in_the_lower_tier(client: Any, ctx: Context) -> None:
    """Bucket at 49,998.0; 120 s ends on 50,000.0: tier 1, 0.0190. Then 6 s: 50,000.1, tier 2."""
    deliver(
        client,
        ctx,
        fill([10_000] * 4 + [9_998], NOV),
        calls_body([terminate("wacid.c6a", NOV, 120)]),
    )
    deliver(client, ctx, calls_body([terminate("wacid.c6b", NOV + 60, 6)]))
    assert money(call(client, "wacid.c6a")) == (20, "2.0", "0:50000", "0.0095", D("0.0190"))
    assert money(call(client, "wacid.c6b")) == (1, "0.1", "50001:250000", "0.0076", D("0.00076"))
    assert call(client, "wacid.c6b")["tier_minutes_after"] == "50000.1"


def test_C_7_late_call_reorders_tiers_with_a_correction(client: Any, ctx: Context) -> None:
    """Bucket at 49,998.0; X (120 s, ends 10:00) tier 1. A late L (30 s, ended 09:00): L takes
    the earlier place (tier 1, 0.00475), X crosses into tier 2 (0.0152) as version 2."""
    deliver(
        client, ctx, fill([10_000] * 4 + [9_998], NOV), calls_body([terminate("wacid.X", NOV, 120)])
    )
    assert (call(client, "wacid.X")["version"], call(client, "wacid.X")["tier"]) == (1, "0:50000")
    deliver(client, ctx, calls_body([terminate("wacid.L", NOV - 3_600, 30)]))
    late, x = call(client, "wacid.L"), call(client, "wacid.X")
    assert money(late) == (5, "0.5", "0:50000", "0.0095", D("0.00475"))
    assert late["tier_minutes_after"] == "49998.5"
    assert money(x) == (20, "2.0", "50001:250000", "0.0076", D("0.0152"))
    assert (x["version"], x["tier_minutes_after"]) == (2, "50000.5")
    feed = [r for r in _feed(ctx) if r.get("call_id") == "wacid.X"]
    assert [(r["version"], r["cost"]) for r in feed] == [(1, "0.0190"), (2, "0.0152")]


def _feed(ctx: Context) -> list[dict[str, Any]]:
    import json

    return [json.loads(f[b"r"]) for _, f in ctx.redis.xrange(ctx.keys.feed)]


def test_C_12_month_boundary_dates_by_end_time(client: Any, ctx: Context) -> None:
    """Start 2026-11-30T23:59:30Z, end 2026-12-01T00:00:40Z, 70 s: 12 pulses, billing month
    2026-12, December's bucket (November's 49,998 minutes do not count)."""
    end = at("2026-12-01T00:00:40")
    deliver(
        client,
        ctx,
        fill([10_000] * 4 + [9_998], at("2026-11-29T00:00")),
        calls_body([terminate("wacid.c12", end, 70, start=at("2026-11-30T23:59:30"), end=end)]),
    )
    rec = call(client, "wacid.c12", "2026-12")
    assert (rec["pulses"], rec["billing_month"], rec["charge_time"]) == (
        12,
        "2026-12",
        "2026-12-01T00:00:40Z",
    )
    assert (rec["tier"], rec["tier_minutes_after"], D(rec["cost"])) == (
        "0:50000",
        "1.2",
        D("0.0114"),
    )


def test_C_17_portfolio_accrual_across_wabas(client: Any, ctx: Context) -> None:
    """W1 calls 30,000 min and W2 25,000 min to Georgia in November (one portfolio): W2's call
    that passes 50,000 portfolio minutes is tier 2, even when W1's calls arrive after it."""
    w2 = [
        terminate(f"wacid.w2-{i}", at(f"2026-11-{20 + i}T10:00"), m * MINUTE, user=OTHER)
        for i, m in enumerate((10_000, 10_000, 5_000))
    ]
    deliver(client, ctx, calls_body(w2, waba=W2, phone=PHONE2))
    assert call(client, "wacid.w2-2", waba=W2)["tier"] == "0:50000"  # alone: 25,000 minutes
    deliver(client, ctx, fill([10_000] * 3, at("2026-11-10T00:00"), waba=W1))
    assert call(client, "wacid.w2-1", waba=W2)["tier"] == "0:50000"  # ends on 50,000.0
    passing = call(client, "wacid.w2-2", waba=W2)
    assert (passing["tier"], passing["tier_minutes_after"], D(passing["cost"])) == (
        "50001:250000",
        "55000.0",
        D("38.0000"),
    )
    assert passing["version"] > 1  # corrected as each of W1's calls took an earlier place


def test_C_13_bsuid_callee(client: Any, ctx: Context) -> None:
    """No ``to``, ``to_user_id: GE.…``: country GE from the BSUID, market Rest of CEE."""
    item = terminate("wacid.c13", NOV, 60, user=None, user_id="GE.12345abcde")
    deliver(client, ctx, calls_body([item]))
    rec = call(client, "wacid.c13")
    assert (rec["user_id"], rec["country"], rec["country_source"], rec["market"]) == (
        "GE.12345abcde",
        "GE",
        "bsuid",
        CEE,
    )
    assert D(rec["cost"]) == D("0.0095")


# -- calls and the customer service window (C-14 to C-16) -------------------------------------


def test_C_14_missed_uic_opens_the_csw(client: Any, ctx: Context) -> None:
    """pmp-2025-07: a UIC connect at 10:00 never answered; a utility template to the same user
    at 20:00 is free (free_customer_service); to another user it is charged."""
    t0 = at("2026-03-15T10:00")
    deliver(
        client,
        ctx,
        calls_body([connect("wacid.c14", t0, uic=True)]),
        utility("wamid.c14", at("2026-03-15T20:00")),
        utility("wamid.c14-other", at("2026-03-15T20:00"), user=OTHER),
    )
    assert message(client, "wamid.c14", "2026-03")["free_reason"] == "free_customer_service"
    assert message(client, "wamid.c14-other", "2026-03")["free_reason"] is None
    assert not [r for r in records(client, "2026-03") if r["kind"] == "call"]


@pytest.mark.parametrize(
    ("day", "free_reason"),
    [("2026-03-16", "free_customer_service"), ("2026-11-16", None)],
    ids=["pmp-2025-07 free", "pmp-2026-10 regular"],
)
def test_C_15_accepted_bic_opens_the_csw(
    client: Any, ctx: Context, day: str, free_reason: str | None
) -> None:
    """BIC ACCEPTED at 11:00, utility delivered 12:00: free under pmp-2025-07; charged under
    pmp-2026-10 (utility is charged inside the CSW). (RINGING alone opens nothing: C-4.)"""
    deliver(
        client,
        ctx,
        calls_body(statuses=[call_status("wacid.c15", "RINGING", at(f"{day}T10:59"))]),
        calls_body(statuses=[call_status("wacid.c15", "ACCEPTED", at(f"{day}T11:00"))]),
        utility("wamid.c15", at(f"{day}T12:00")),
    )
    rec = message(client, "wamid.c15", day[:7])
    assert (rec["free_reason"], rec["billable"]) == (free_reason, free_reason is None)


def test_C_16_permission_request_is_a_service_message(client: Any, ctx: Context) -> None:
    """pmp-2026-10: the interactive call_permission_request delivered in the CSW after P1 used
    its 1,000 free service messages is charged as service at the callee's market rate."""
    t0 = at("2026-11-05T08:00")
    replies = [
        p.status(f"wamid.s{i}", "delivered", t0 + 60 + i, user=GEORGIA, category="service")
        for i in range(1_000)
    ]
    deliver(
        client,
        ctx,
        p.body(p.change(messages=[p.inbound("wamid.hi", t0, user=GEORGIA)])),
        p.body(p.change(statuses=replies)),
    )
    request = p.status("wamid.perm", "delivered", t0 + 3_600, user=GEORGIA, category="service")
    deliver(client, ctx, p.body(p.change(statuses=[request])))
    rec = message(client, "wamid.perm", "2026-11")
    assert (rec["category"], rec["billable"], rec["market"], rec["cost"]) == (
        "service",
        True,
        CEE,
        "0.0200",
    )


# -- quotes ------------------------------------------------------------------------------------


def quote(client: Any, **fields: Any) -> dict[str, Any]:
    body = {"kind": "call", "phone_number_id": p.PHONE, "waba_id": p.WABA, **fields}
    reply = client.post("/v1/quote", json=body, headers=auth())
    assert reply.status_code == 200, reply.json
    return dict(reply.json)


def test_quote_a_call_from_the_buckets_current_minutes(client: Any, ctx: Context) -> None:
    """A quoted BIC is priced whole by the bucket's minutes now plus its own (C-6's numbers:
    49,998.0 + 2.0 stays in tier 1; 2.1 crosses into tier 2); a UIC is free; nothing changes."""
    deliver(client, ctx, fill([10_000] * 4 + [9_998], NOV))
    at = "2026-11-20T11:00:00Z"
    answer = quote(client, to="+" + GEORGIA, duration_s=120, at=at)
    assert (answer["pulses"], answer["billed_minutes"], answer["tier"], answer["rate"]) == (
        20,
        "2.0",
        "0:50000",
        "0.0095",
    )
    assert (answer["cost"], answer["tier_minutes_after"], answer["market"]) == (
        "0.0190",
        "50000.0",
        CEE,
    )
    assert (answer["kind"], answer["billable"], answer["allowed"]) == ("call", True, True)
    crossing = quote(client, to=GEORGIA, duration_s=126, at=at)
    assert (crossing["pulses"], crossing["tier"], D(crossing["cost"])) == (
        21,
        "50001:250000",
        D("0.01596"),
    )
    free = quote(client, to=GEORGIA, duration_s=300, direction="user_initiated", at=at)
    assert (free["billable"], free["free_reason"], free["cost"]) == (
        False,
        "free_user_initiated",
        "0",
    )
    earlier = quote(client, to=GEORGIA, duration_s=120, at="2026-11-16T00:00:00Z")
    assert earlier["tier_minutes_after"] == "10000.0"  # only the call of 9,998 min is before
    assert len(earlier["affects_record_ids"]) == 4  # the four after it would move back
    assert [r["call_id"] for r in records(client)] == [
        f"wacid.fill-{p.WABA}-{i}" for i in (4, 3, 2, 1, 0)
    ]


def test_quote_a_call_rejects_bad_input(client: Any, ctx: Context) -> None:
    """A call quote needs a callee and a whole number of seconds."""
    for fields in (
        {"to": "x", "duration_s": 5},
        {"to": GEORGIA, "duration_s": "5"},
        {"to": GEORGIA, "duration_s": -1},
    ):
        body = {"kind": "call", "phone_number_id": p.PHONE, "waba_id": p.WABA, **fields}
        assert client.post("/v1/quote", json=body, headers=auth()).status_code == 400


def test_call_records_usage_and_quotes_match_the_document(
    app: Any, client: Any, ctx: Context
) -> None:
    """Call records (charged and free), a usage line with minutes and a call quote validate
    against the API's own OpenAPI document."""
    from tests.test_openapi import operation

    deliver(
        client,
        ctx,
        calls_body([terminate("wacid.doc", NOV, 61), terminate("wacid.uic", NOV, 30, uic=True)]),
    )
    query = {"waba_id": p.WABA, "month": "2026-11"}
    for path in ("/v1/records", "/v1/usage"):
        reply = operation(app, "GET", path).Case(query=query).call_and_validate(headers=auth())
        assert reply.status_code == 200
    body = {"kind": "call", "phone_number_id": p.PHONE, "to": "+" + GEORGIA, "duration_s": 61}
    case = operation(app, "POST", "/v1/quote").Case(body=body, media_type="application/json")
    assert case.call_and_validate(headers=auth()).json()["cost"] == "0.01045"  # 11 pulses


def test_unrated_call_is_billable_with_null_cost(client: Any, ctx: Context) -> None:
    """A BIC to a market with no calling rate is never priced by a guess: billable, cost null,
    listed under unrated (its minutes still counted)."""
    deliver(client, ctx, calls_body([terminate("wacid.us", NOV, 60, user="16315553601")]))
    rec = call(client, "wacid.us")
    assert (rec["billable"], rec["rate"], rec["cost"], rec["tier"]) == (True, None, None, None)
    found = usage(client)
    assert found["unrated_units"] == 1 and found["lines"][0]["minutes"] == "1.0"


def test_report_shows_call_minutes(client: Any, ctx: Context, environ: dict[str, str]) -> None:
    """``wa-billing report`` has a minutes column for call lines (table, CSV and JSON)."""
    from tests.test_cli import run

    deliver(
        client, ctx, calls_body([terminate("wacid.r1", NOV, 61), terminate("wacid.r2", NOV, 56)])
    )
    args = ["report", "--waba", p.WABA, "--month", "2026-11", "--format"]
    table = run(environ, *args, "table").output
    assert "minutes" in table.splitlines()[1] and "2.1" in table
    csv_text = run(environ, *args, "csv").output
    assert csv_text.splitlines()[0].endswith(",minutes") and csv_text.splitlines()[1].endswith(
        ",2.1"
    )
    assert '"minutes": "2.1"' in run(environ, *args, "json").output


def test_rerate_keeps_calls_and_reprices_them_from_new_files(
    client: Any, ctx: Context, tmp_path: Path
) -> None:
    """``rerate`` prices calls as the apply script does (same config: nothing changes, usage
    and minutes the same); with a new calling table the bucket is priced again whole-call."""
    from processor.config_files import load_ratebook
    from processor.store.rerate import Rerater

    deliver(
        client, ctx, fill([10_000] * 4 + [9_998], NOV), calls_body([terminate("wacid.X", NOV, 120)])
    )
    deliver(client, ctx, calls_body([terminate("wacid.L", NOV - 3_600, 30)]))
    deliver(client, ctx, calls_body([terminate("wacid.U", NOV, 90, uic=True)]))
    before, used = records(client), usage(client)

    def rerate(config: Path) -> int:
        ratebook = load_ratebook(config)
        rerater = Rerater(ctx.ledger_redis, ctx.ledger_keys, ratebook, 10_000, ctx.ledger.book)
        return rerater.rerate("2026-11").changed

    assert rerate(Path(ctx.settings.config_dir)) == 0
    assert (records(client), usage(client)) == (before, used)
    cheaper = tmp_path / "cheaper"
    cheaper.mkdir()
    for name, text in CONFIG.items():
        (cheaper / name).write_text(text.replace("0.0076", "0.0070"))
    assert rerate(cheaper) == 1
    x = call(client, "wacid.X")
    assert (x["version"], x["cost"], x["tier_minutes_after"]) == (3, "0.0140", "50000.5")
    after = usage(client)
    assert D(after["total_cost"]) == sum(D(r["cost"]) for r in records(client))
    assert [ln["minutes"] for ln in after["lines"]] == [ln["minutes"] for ln in used["lines"]]


def test_quote_a_call_refuses_a_time_out_of_range(client: Any, ctx: Context) -> None:
    """A call ending in year 105 is no call this processor can date (400, not a bad month)."""
    body = {"kind": "call", "phone_number_id": p.PHONE, "waba_id": p.WABA, "to": GEORGIA}
    body.update(duration_s=60, at="0105-01-29T05:11:50Z")
    assert client.post("/v1/quote", json=body, headers=auth()).status_code == 400


def test_calls_are_not_reconciled_against_pricing_analytics(client: Any, ctx: Context) -> None:
    """Meta reports calls in ``call_analytics`` (rule book 8.5), not ``pricing_analytics``: a
    call record makes no reconciliation line of ours; its tier is still listed beside Meta's
    CALLING tier webhooks."""
    from zoneinfo import ZoneInfo

    from processor.core.reconcile import Inputs, parse_tolerance, reconcile

    deliver(client, ctx, calls_body([terminate("wacid.rc", NOV, 60)]))
    result = reconcile(
        Inputs(
            waba_id=p.WABA,
            month="2026-11",
            currency="USD",
            tz=ZoneInfo("UTC"),
            fetched_at=NOV,
            now=NOV,
            tolerance=parse_tolerance("0"),
            points=[],
            records=records(client),
            display_numbers={},
        )
    )
    assert result["lines"] == []
    assert [(t["market"], t["category"], t["ours_tier"]) for t in result["tiers"]] == [
        (CEE, "calling", "0:50000")
    ]


def test_the_real_uic_log_connected_then_failed(client: Any, ctx: Context) -> None:
    """The real 2025-10-17 log (rule book 8.3, CX): a UIC connect, then terminate FAILED after
    20 connected seconds: one free record of 4 pulses, call_status FAILED."""
    india = "917358580180"
    call_id = "wacid.HBgMOTE3MzU4NTgwMTgwFQIAEhggQUNEODk3"
    uic_connect = {**connect(call_id, 1760681506, user=india, uic=True), "to": "15551441906"}
    item = {
        "id": call_id,
        "from": india,
        "to": "15551441906",
        "event": "terminate",
        "timestamp": "1760681533",
        "direction": "USER_INITIATED",
        "start_time": "1760681513",
        "end_time": "1760681533",
        "duration": 20,
        "status": "FAILED",
        "errors": [{"code": 138021, "title": "no media for a long time"}],
    }
    deliver(client, ctx, calls_body([uic_connect]), calls_body([item]))
    rec = call(client, call_id, "2025-10")
    assert (rec["direction"], rec["call_status"], rec["pulses"], rec["billable"]) == (
        "user_initiated",
        "FAILED",
        4,
        False,
    )
    assert (rec["user_id"], rec["charge_time"], rec["discrepancy"]) == (
        india,
        "2025-10-17T06:12:13Z",
        None,
    )


def test_dashboard_days_and_numbers_cost_calls_by_minutes(client: Any, ctx: Context) -> None:
    """The dashboard's breakdown by day and number prices a call by its minutes, as usage does
    (a 2.0-minute call costs 0.0190, not one per-minute rate), before and after a rerate."""
    from processor.store.dashboard import Dashboard
    from processor.store.rerate import Rerater

    deliver(client, ctx, calls_body([terminate("wacid.d", NOV, 120, status="FAILED")]))
    board = Dashboard(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, ctx.ledger.book)

    def seen() -> tuple[Any, ...]:
        view = board.view(p.WABA, "2026-11", NOV)
        [day] = [d for d in view["days"] if d["units"]]
        [number] = view["numbers"]
        return day["cost"], day["discrepancies"], view["usage"]["total_cost"], number

    before = seen()
    assert before[:3] == ("0.0190", 0, "0.0190")
    Rerater(ctx.ledger_redis, ctx.ledger_keys, ctx.ratebook, 1_000, ctx.ledger.book).rerate(
        "2026-11"
    )
    assert seen() == before


def test_export_csv_has_the_call_columns(
    client: Any, ctx: Context, environ: dict[str, str]
) -> None:
    """``wa-billing export --format csv`` has a call's own fields after the record columns."""
    import csv
    import io

    from tests.test_cli import run

    deliver(client, ctx, calls_body([terminate("wacid.e", NOV, 61)]))
    out = run(environ, "export", "--month", "2026-11", "--format", "csv").output
    [row] = list(csv.DictReader(io.StringIO(out[out.index("record_id") :])))
    assert (row["call_id"], row["pulses"], row["billed_minutes"], row["cost"]) == (
        "wacid.e",
        "11",
        "1.1",
        "0.01045",
    )

"""Rule book 9 (``pmp-2026-10`` refinements), through the real pipeline: webhook bodies ->
parse -> the ledger on a real Redis -> records. Test ids are the book's (9.6).

Fixture (9.6): service rates = utility rates of 7.7 (Brazil 0.0068, India 0.0014, North America
0.0034); the WABA zone is UTC unless stated; P1 and P2 are two numbers of the same WABA. The
allowance is the real one (1,000 service messages per number per month).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from processor.config_files import load_ratebook
from processor.core.events import Pricing, Status
from processor.core.history import PairHistory
from processor.core.model import SERVICE_ALLOWANCE_MISMATCH as MISMATCH
from processor.core.parse import parse_body
from processor.core.policies import FREE_CUSTOMER_SERVICE
from processor.store.quoting import Quoter
from processor.store.rerate import Rerater
from tests import payloads as p
from tests.oct2026_helpers import (
    EXEMPT,
    MAX_PRICE,
    P1,
    P2,
    P3,
    P4,
    ZONED,
    World,
    brazil,
    service,
    template,
    world,
    write_config,
)
from tests.rules_helpers import PAIR, ts

__all__ = ["world"]  # the fixture
NOV = "2026-11"


def money(rec: dict[str, object]) -> tuple[object, ...]:
    return (rec["billable"], rec["free_reason"], rec["rate"], rec["cost"], rec["tier"])


def test_S_1_the_allowance_is_per_business_number(world: World) -> None:
    """1,000 delivered service messages per business number per month are free; #1,001 is
    charged at the service rate without tiers; another number of the same WABA has its own."""
    world.fill(1_000, ts("2026-11-20T10:00"))
    world.post([service("wamid.S1001", ts("2026-11-20T12:00"), brazil(1), "regular")])
    world.post(
        [service("wamid.P2", ts("2026-11-20T12:05"), brazil(2), FREE_CUSTOMER_SERVICE)], phone=P2
    )
    found = world.records(NOV)
    p1 = [r for r in found.values() if r["phone_number_id"] == P1]
    assert len(p1) == 1_001
    free = [r for r in p1 if r["wamid"] != "wamid.S1001"]
    assert {(r["billable"], r["free_reason"], r["cost"]) for r in free} == {
        (False, "free_tier", "0")
    }
    assert money(found["wamid.S1001"]) == (True, None, "0.0068", "0.0068", None)
    assert (found["wamid.S1001"]["discrepancy"], found["wamid.S1001"]["source"]) == (None, "meta")
    assert money(found["wamid.P2"]) == (False, "free_tier", "0.0068", "0", None)
    assert (world.allowance_used(NOV), world.allowance_used(NOV, phone=P2)) == (1_001, 1)
    assert world.usage(NOV)["total_cost"] == "0.0068"


def test_S_2_the_allowance_month_is_the_wabas_zone(world: World) -> None:
    """The bucket is (number, month of the charge time in the WABA's zone): Oct 31 23:30 in
    Sao Paulo is October's unit #1,001; Nov 1 00:30 there is November's unit #1."""
    world.fill(1_000, ts("2026-10-20T10:00", "America/Sao_Paulo"), phone=P3, waba=ZONED)
    october = service("wamid.late-oct", ts("2026-11-01T02:30"), brazil(1), "regular")
    november = service("wamid.early-nov", ts("2026-11-01T03:30"), brazil(2), FREE_CUSTOMER_SERVICE)
    world.post([october, november], phone=P3, waba=ZONED)
    first = world.record("wamid.late-oct", "2026-10", ZONED)
    second = world.record("wamid.early-nov", NOV, ZONED)
    assert (first["billing_month"], money(first)) == (
        "2026-10",
        (True, None, "0.0068", "0.0068", None),
    )
    assert (second["billing_month"], money(second)) == (
        NOV,
        (False, "free_tier", "0.0068", "0", None),
    )
    assert world.allowance_used("2026-10", P3, ZONED) == 1_001
    assert world.allowance_used(NOV, P3, ZONED) == 1


def test_S_3_the_era_boundary_is_in_the_wabas_zone(world: World) -> None:
    """A service message delivered 2026-09-30T23:59:59 is pmp-2025-07 (free_customer_service,
    not counted); one at 2026-10-01T00:00:00 is pmp-2026-10 unit #1 (free_tier)."""
    world.post(messages=[p.inbound("wamid.in", ts("2026-09-30T20:00"))])
    world.post(
        [
            service("wamid.sep", ts("2026-09-30T23:59:59"), ptype=FREE_CUSTOMER_SERVICE),
            service("wamid.oct", ts("2026-10-01T00:00"), ptype=FREE_CUSTOMER_SERVICE),
        ]
    )
    before, after = world.record("wamid.sep", "2026-09"), world.record("wamid.oct", "2026-10")
    assert (before["policy"], before["free_reason"], before["billable"]) == (
        "pmp-2025-07",
        FREE_CUSTOMER_SERVICE,
        False,
    )
    assert (after["policy"], after["free_reason"], after["billable"]) == (
        "pmp-2026-10",
        "free_tier",
        False,
    )
    assert (world.allowance_used("2026-09"), world.allowance_used("2026-10")) == (0, 1)


def test_S_4_a_reaction_makes_no_unit(world: World) -> None:
    """An outbound reaction only ever gets ``sent`` (no type in any status, so the processor
    cannot tell it is a reaction): a ``sent`` alone creates no record, no unit, no pending."""
    t = ts("2026-11-04T10:00")
    world.post(messages=[p.inbound("wamid.in", t)])
    world.post([service("wamid.reaction", t + 60, ptype=FREE_CUSTOMER_SERVICE, state="sent")])
    assert world.records(NOV) == {}
    assert world.queries.pending() == []
    assert world.allowance_used(NOV) == 0


def test_S_5_entry_point_deliveries_do_not_use_the_allowance(world: World) -> None:
    """Deliveries inside an FEP are free (referral_conversion) and leave P's allowance as is."""
    world.post(messages=[p.inbound("wamid.ad", ts("2026-11-02T10:00"), referral=True)])
    times = ["2026-11-02T10:05", "2026-11-02T11:00", "2026-11-02T12:00"]
    world.post(
        [service(f"wamid.fep{i}", ts(t), ptype="free_entry_point") for i, t in enumerate(times)]
    )
    found = world.records(NOV)
    assert {(r["category"], r["free_reason"], r["billable"]) for r in found.values()} == {
        ("referral_conversion", "free_entry_point", False)
    }
    assert len(found) == 3
    assert world.allowance_used(NOV) == 0


def test_S_6_utility_in_the_csw_is_charged_and_accrues_to_tiers(world: World) -> None:
    """Utility inside the CSW is ``regular``: charged at its (tier) rate, and it adds 1 to the
    portfolio x Brazil x utility accrual."""
    world.post(messages=[p.inbound("wamid.in", ts("2026-11-03T09:00"))])
    world.post([template("wamid.util", ts("2026-11-03T09:10"), "utility")])
    rec = world.record("wamid.util", NOV)
    assert money(rec) == (True, None, "0.0068", "0.0068", "1:100000")
    assert (rec["discrepancy"], world.accrual("Brazil", "utility", NOV)) == (None, 1)


def test_S_7_late_reorder(world: World) -> None:
    """A late delivery takes its charge-time place: S0 (11:59) becomes unit 1,000 (free), S1 is
    pushed to 1,001 and re-emitted charged as version 2; S2 (now 1,002) stays version 1."""
    world.fill(999, ts("2026-11-20T10:00"))
    world.post(
        [
            service("wamid.S1", ts("2026-11-20T12:00"), brazil(1)),
            service("wamid.S2", ts("2026-11-20T12:05"), brazil(2)),
        ]
    )
    s1, s2 = world.record("wamid.S1", NOV), world.record("wamid.S2", NOV)
    assert (money(s1), s1["version"]) == ((False, "free_tier", "0.0068", "0", None), 1)
    assert (money(s2), s2["version"]) == ((True, None, "0.0068", "0.0068", None), 1)
    world.post([service("wamid.S0", ts("2026-11-20T11:59"), brazil(3))])
    s0, s1, s2 = (world.record(w, NOV) for w in ("wamid.S0", "wamid.S1", "wamid.S2"))
    assert (money(s0), s0["version"]) == ((False, "free_tier", "0.0068", "0", None), 1)
    assert (money(s1), s1["version"]) == ((True, None, "0.0068", "0.0068", None), 2)
    assert (money(s2), s2["version"]) == ((True, None, "0.0068", "0.0068", None), 1)
    assert world.usage(NOV)["total_cost"] == "0.0136"


def test_S_7_late_reorder_clears_a_mismatch_meta_foresaw(world: World) -> None:
    """Meta saw S0 first and called S1 ``regular``: charged from the start (Meta wins, marked);
    once S0 arrives the model agrees, and S1 is re-emitted without the discrepancy."""
    world.fill(999, ts("2026-11-20T10:00"))
    world.post([service("wamid.S1", ts("2026-11-20T12:00"), brazil(1), "regular")])
    s1 = world.record("wamid.S1", NOV)
    assert (money(s1)[:2], s1["discrepancy"]) == ((True, None), MISMATCH)
    world.post([service("wamid.S0", ts("2026-11-20T11:59"), brazil(3), FREE_CUSTOMER_SERVICE)])
    s1 = world.record("wamid.S1", NOV)
    assert (money(s1)[:2], s1["discrepancy"], s1["version"]) == ((True, None), None, 2)
    assert world.queries.discrepancies(p.WABA, NOV) == []


def test_S_8_metas_free_tier_answer_wins(world: World) -> None:
    """The model numbers a service unit 1,001 and Meta says free_customer_service: the record
    is free as Meta said (source meta), marked service_allowance_mismatch."""
    world.fill(1_000, ts("2026-11-20T10:00"))
    world.post([service("wamid.S1001", ts("2026-11-20T12:00"), brazil(1), FREE_CUSTOMER_SERVICE)])
    rec = world.record("wamid.S1001", NOV)
    assert (rec["billable"], rec["source"], rec["discrepancy"]) == (False, "meta", MISMATCH)
    assert (rec["free_reason"], rec["cost"]) == ("free_tier", "0")
    [listed] = world.queries.discrepancies(p.WABA, NOV)
    assert listed["wamid"] == "wamid.S1001"


def test_S_9_the_delivered_pricing_beats_the_sent_pricing(world: World) -> None:
    """``sent`` says free_customer_service, ``delivered`` says regular: charged."""
    t = ts("2026-11-05T10:00")
    world.post(messages=[p.inbound("wamid.in", t)])
    world.post(
        [
            template("wamid.u", t + 60, "utility", ptype=FREE_CUSTOMER_SERVICE)
            | {"status": "sent"},
            template("wamid.u", t + 65, "utility", ptype="regular"),
            service("wamid.s", t + 70, ptype=FREE_CUSTOMER_SERVICE, state="sent"),
            service("wamid.s", t + 75, ptype="regular"),
        ]
    )
    util, svc = world.record("wamid.u", NOV), world.record("wamid.s", NOV)
    assert (money(util)[:3], util["discrepancy"]) == ((True, None, "0.0068"), None)
    # unit #1 of the allowance, yet Meta's delivered answer (beyond the free tier) wins
    assert (money(svc)[:3], svc["discrepancy"]) == ((True, None, "0.0068"), MISMATCH)


def test_S_10_exempt_organisation(world: World) -> None:
    """With service_exempt_until 2027-12-31, unit 1,001 on 2026-11-20 is free (free_service);
    on 2028-01-01 unit 1,001 is charged."""
    world.fill(1_000, ts("2026-11-20T10:00"), phone=P4, waba=EXEMPT)
    world.post(
        [service("wamid.N1001", ts("2026-11-20T12:00"), brazil(1), "regular")],
        phone=P4,
        waba=EXEMPT,
    )
    world.fill(1_000, ts("2028-01-01T08:00"), phone=P4, waba=EXEMPT, tag="j")
    world.post(
        [service("wamid.J1001", ts("2028-01-01T12:00"), brazil(2), "regular")],
        phone=P4,
        waba=EXEMPT,
    )
    nov, jan = (
        world.record("wamid.N1001", NOV, EXEMPT),
        world.record("wamid.J1001", "2028-01", EXEMPT),
    )
    assert (money(nov), nov["discrepancy"]) == ((False, "free_service", "0.0068", "0", None), None)
    assert money(jan) == (True, None, "0.0068", "0.0068", None)
    assert world.allowance_used("2028-01", P4, EXEMPT) == 1_001


def test_S_11_an_unknown_category_is_kept_unrated(world: World) -> None:
    """A delivery of an unknown category is kept, rate null, counted in unrated_units and
    listed; it does not use the allowance."""
    t = ts("2026-11-06T10:00")
    world.post([template("wamid.mba", t, "business_agent")])
    rec = world.record("wamid.mba", NOV)
    assert (rec["category"], rec["billable"], rec["rate"], rec["cost"]) == (
        "business_agent",
        True,
        None,
        None,
    )
    usage = world.usage(NOV)
    assert usage["unrated_units"] == 1
    assert usage["unrated"] == [
        {"category": "business_agent", "market": "Brazil", "currency": "USD", "count": 1}
    ]
    assert world.allowance_used(NOV) == 0


def test_S_11_an_unknown_pricing_type_is_kept_unrated(world: World) -> None:
    """An unknown ``pricing.type`` on a service delivery: kept, never priced, never in the
    allowance (Meta adds values without a version bump)."""
    world.post([service("wamid.x", ts("2026-11-06T10:00"), ptype="free_ai_trial")])
    rec = world.record("wamid.x", NOV)
    assert (rec["category"], rec["billable"], rec["rate"], rec["cost"]) == (
        "service",
        True,
        None,
        None,
    )
    assert world.usage(NOV)["unrated_units"] == 1
    assert world.allowance_used(NOV) == 0


def test_pricing_subtype_is_stored_verbatim_and_never_read(world: World) -> None:
    """``pricing.subtype`` is kept as Meta sent it; exemption is never inferred from it."""
    world.fill(1_000, ts("2026-11-20T10:00"))
    status = service("wamid.S1001", ts("2026-11-20T12:00"), brazil(1), "regular")
    status["pricing"]["subtype"] = "paid_exempt"
    world.post([status])
    rec = world.record("wamid.S1001", NOV)
    assert (rec["pricing_subtype"], money(rec)[:3]) == ("paid_exempt", (True, None, "0.0068"))
    assert world.record("wamid.f0", NOV)["pricing_subtype"] is None


def test_the_allowance_total_is_what_charge_time_order_gives(world: World) -> None:
    """Whatever the arrival order, usage equals charge-time order: 3 late units of the morning
    push 3 afternoon units past the allowance."""
    world.fill(1_000, ts("2026-11-20T14:00"), ptype=None)
    world.post([service(f"wamid.m{i}", ts("2026-11-20T09:00") + i, brazil(i)) for i in range(3)])
    charged = [r for r in world.records(NOV).values() if r["billable"]]
    assert sorted(r["wamid"] for r in charged) == ["wamid.f997", "wamid.f998", "wamid.f999"]
    assert Decimal(world.usage(NOV)["total_cost"]) == 3 * Decimal("0.0068")


# -- pricing.subtype: parsed verbatim, stored beside older histories -----------------------------


def test_pricing_subtype_is_parsed_verbatim_and_a_malformed_one_is_refused() -> None:
    """A printable subtype is kept as sent; anything else quarantines the status."""
    good = service("wamid.a", ts("2026-11-20T12:00"), ptype="regular")
    good["pricing"]["subtype"] = "paid_exempt"
    bad = service("wamid.b", ts("2026-11-20T12:00"), ptype="regular")
    bad["pricing"]["subtype"] = {"nested": True}
    parsed = parse_body(json.dumps(p.body(p.change(statuses=[good, bad]))).encode())
    [event] = parsed.events
    assert isinstance(event, Status) and event.pricing is not None
    assert event.pricing.subtype == "paid_exempt"
    [rejected] = parsed.rejected
    assert rejected.reason == "pricing.subtype is not a printable string"


def test_a_history_stored_before_subtypes_merges_with_a_status_carrying_one() -> None:
    """Stored facts have eight fields; a later status with a subtype adds a ninth."""
    t = ts("2026-11-20T12:00")
    old = PairHistory.loads(
        json.dumps(
            {
                "i": {},
                "o": {"w": {"sent": [t, None, None, None, "PMP", "service", "regular", True]}},
                "u": {},
            }
        )
    )
    pricing = Pricing(True, "PMP", "service", "regular", "paid_exempt")
    assert old.merge(Status(PAIR, "w", "sent", t, None, pricing))
    assert old.merge(Status(PAIR, "w", "delivered", t + 5, None, pricing))
    facts = old.facts("w")
    assert (facts.charge_time, facts.subtype, facts.pricing_type) == (
        t + 5,
        "paid_exempt",
        "regular",
    )


def test_a_quote_for_an_exempt_waba_says_free_service_past_the_allowance(world: World) -> None:
    """The quote prices the next service message as the ledger will: past the allowance of an
    exempt WABA it is free_service; of another WABA, charged at the service rate."""
    t = ts("2026-11-20T12:00")
    world.fill(1_000, t - 3 * 3_600, phone=P4, waba=EXEMPT)
    world.fill(1_000, t - 3 * 3_600)
    quoter = Quoter(world.redis, world.keys, world.ledger.ratebook, world.ledger.book)
    user = brazil(7)
    for phone, waba in ((P4, EXEMPT), (P1, p.WABA)):
        world.post(messages=[p.inbound(f"wamid.in-{phone}", t - 60, user)], phone=phone, waba=waba)
    exempt = quoter.quote(EXEMPT, P4, user, "service", False, t)
    other = quoter.quote(p.WABA, P1, user, "service", False, t)
    assert (exempt["billable"], exempt["free_reason"], exempt["allowance"]["left"]) == (
        False,
        "free_service",
        0,
    )
    assert (other["billable"], other["free_reason"], other["cost"]) == (True, None, "0.0068")


def test_billable_is_never_read_when_type_is_present(world: World) -> None:
    """``pricing.billable`` is deprecated (9.3): a ``regular`` utility Meta calls
    ``billable: false`` is charged, and a ``free_customer_service`` service unit Meta calls
    ``billable: true`` is free."""
    t = ts("2026-11-12T10:00")
    util = p.status(
        "wamid.u",
        "delivered",
        t,
        category="utility",
        model="PMP",
        pricing_type="regular",
        billable=False,
    )
    world.post([util, service("wamid.s", t + 5, ptype=FREE_CUSTOMER_SERVICE)])
    assert money(world.record("wamid.u", NOV))[:3] == (True, None, "0.0068")
    assert money(world.record("wamid.s", NOV))[:2] == (False, "free_tier")


def test_a_number_shared_by_two_wabas_has_one_allowance(world: World) -> None:
    """Rule book 9.2.2: a number shared by several WABAs (Multi-Solution Conversations) keeps
    one allowance, keyed by phone_number_id (standalone ledger; on a cluster only when the WABAs
    share a portfolio, since keys are tagged by portfolio)."""
    world.fill(1_000, ts("2026-11-20T10:00"))
    world.post(
        [service("wamid.other", ts("2026-11-20T12:00"), brazil(1), "regular")], waba=MAX_PRICE
    )
    rec = world.record("wamid.other", NOV, MAX_PRICE)
    assert (money(rec), rec["discrepancy"]) == ((True, None, "0.0068", "0.0068", None), None)
    assert world.allowance_used(NOV) == 1_001


def test_a_rerate_applies_an_exemption_configured_late(world: World, tmp_path: Path) -> None:
    """Eligibility is often learnt after the month began: once service_exempt_until is set,
    ``rerate`` makes the units past the allowance free_service (a correction), and keeps the
    allowance's own units free_tier."""
    world.fill(1_000, ts("2026-11-20T10:00"))
    world.post([service("wamid.S1001", ts("2026-11-20T12:00"), brazil(1), "regular")])
    assert world.record("wamid.S1001", NOV)["billable"] is True
    config = write_config(tmp_path / "exempt")
    wabas = (
        (config / "wabas.csv")
        .read_text()
        .replace(f"{p.WABA},USD,UTC,,,", f"{p.WABA},USD,UTC,,2027-12-31,")
    )
    (config / "wabas.csv").write_text(wabas)
    ratebook = load_ratebook(config)
    result = Rerater(world.redis, world.keys, ratebook, 100_000).rerate(NOV, p.WABA)
    assert result.changed == 1
    rec = world.record("wamid.S1001", NOV)
    assert (money(rec), rec["version"]) == ((False, "free_service", "0.0068", "0", None), 2)
    assert world.record("wamid.f0", NOV)["free_reason"] == "free_tier"
    assert world.usage(NOV)["total_cost"] == "0"

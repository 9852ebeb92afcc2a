"""Rule book section 7, group messages: the table of 7.7 (G-1 ... G-12) through the real
pipeline (signed webhook -> inbox -> drain -> ledger on a real Redis -> records), with Meta's
webhook shapes of 7.4 and the fixture rates of 7.7 in a config dir of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.context import Context
from processor.core.events import Event, Inbound, Pricing, Status
from processor.core.groups import TOO_EARLY, WITHOUT_PARTICIPANT, group_pair
from processor.core.model import evaluate, record_id
from processor.core.policies import VOLUME_TIER
from processor.web import create_app
from tests import group_payloads as g
from tests import payloads as p
from tests.conftest import auth
from tests.money_helpers import context_with, post
from tests.rules_helpers import BOOK, UTC, history_of, ts
from workers.drain import drain, use_context

# Group G on P1: A, B and E in Brazil (+55), C in India (+91), D in North America (+1).
A, B, C, D, E = "5511911110001", "5511911110002", "919811110003", "12025550104", "5511911110005"
EVERYONE = (A, B, C, D, E)
MARKETS = (
    "effective_from,country,market\n2020-01-01,BR,Brazil\n2020-01-01,IN,India\n"
    "2020-01-01,US,North America\n"
)
FIXTURE = {  # 7.7: (marketing, utility); from 2026-10-01 service = utility
    "Brazil": ("0.0625", "0.0068"),
    "India": ("0.0118", "0.0014"),
    "North America": ("0.0250", "0.0034"),
}
RATES = "effective_from,market,currency,category,rate\n" + "".join(
    f"2026-01-01,{m},USD,marketing,{mk}\n2026-01-01,{m},USD,utility,{ut}\n"
    f"2026-10-01,{m},USD,service,{ut}\n"
    for m, (mk, ut) in FIXTURE.items()
)
# The portfolio's utility volume stays below the first tier (7.7).
TIERS = "effective_from,market,currency,category,from_volume,to_volume,rate\n" + "".join(
    f"2026-01-01,{m},USD,utility,0,100000,{ut}\n2026-01-01,{m},USD,utility,100000,,0.0001\n"
    for m, (_, ut) in FIXTURE.items()
)
MARCH, NOVEMBER = "2026-03", "2026-11"


@pytest.fixture
def world(environ: dict[str, str], tmp_path: Path) -> Iterator[tuple[Context, Any]]:
    directory = tmp_path / "fixture-config"
    directory.mkdir()
    for name, text in (("markets", MARKETS), ("rates", RATES), ("tiers", TIERS)):
        (directory / f"{name}.csv").write_text(text, encoding="utf-8")
    with context_with(environ, directory) as ctx:
        app = create_app(ctx=ctx)
        app.config["TESTING"] = True
        yield ctx, app.test_client()


def send(world: tuple[Context, Any], *changes: dict[str, Any]) -> dict[str, int]:
    """POST one body per change, then run the drain job."""
    ctx, client = world
    for change in changes:
        post(client, p.body(change))
    use_context(ctx)
    return drain()


def records(world: tuple[Context, Any], month: str = MARCH) -> list[dict[str, Any]]:
    reply = world[1].get(f"/v1/records?waba_id={p.WABA}&month={month}&limit=1000", headers=auth())
    assert reply.status_code == 200, reply.json
    return sorted(reply.json["records"], key=lambda r: (r["charge_time"], r["user_id"]))


def of(found: list[dict[str, Any]], wamid: str) -> dict[str, dict[str, Any]]:
    """The records of one message, by participant."""
    return {r["user_id"]: r for r in found if r["wamid"] == wamid}


def total(found: dict[str, dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["cost"]) for r in found.values()), Decimal(0))


def delivered_to(
    wamid: str, t: int, who: tuple[str, ...], category: str | None, ptype: str | None = None
) -> dict[str, Any]:
    """The aggregated ``delivered`` POST of ``wamid``: participant i at ``t + i`` seconds."""
    statuses = [
        g.participant_status(wamid, "delivered", t + i, u, category=category, ptype=ptype)
        for i, u in enumerate(who)
    ]
    return g.aggregated(statuses)


def one_to_one_utility(user: str, t: int, ptype: str | None = None) -> dict[str, Any]:
    """A 1:1 utility template delivered to ``user`` (``wamid.1to1``)."""
    status = p.status(
        "wamid.1to1", "delivered", t, user, "utility", model="PMP", pricing_type=ptype
    )
    return p.change(statuses=[status])


def quarantined(world: tuple[Context, Any]) -> list[str]:
    reply = world[1].get("/v1/quarantine", headers=auth())
    return [item["reason"] for item in reply.json["items"]]


# -- pmp-2025-07 (March 2026) ---------------------------------------------------------------------

T1 = ts("2026-03-10T10:00:00")


def g1_events() -> list[dict[str, Any]]:
    return [
        g.aggregated([g.group_sent("wamid.G1", T1 + 1)]),
        delivered_to("wamid.G1", T1 + 3, (A, B, C), "group_marketing", "regular"),
        g.aggregated(
            [
                g.participant_status(
                    "wamid.G1",
                    "read",
                    ts("2026-03-10T10:07:00"),
                    D,
                    category="group_marketing",
                    ptype="regular",
                )
            ]
        ),
    ]


def test_G_1_per_delivery(world: tuple[Context, Any]) -> None:
    """One unit per participant reaching delivered/read, at the participant's market; the
    group-level `sent` and the participant never delivered (E) cost nothing."""
    send(world, *g1_events())
    found = of(records(world), "wamid.G1")
    assert set(found) == {A, B, C, D}
    assert {r["category"] for r in found.values()} == {"group_marketing"}
    assert all(r["billable"] and r["group_id"] == g.GROUP for r in found.values())
    costs = {u: r["cost"] for u, r in found.items()}
    assert costs == {A: "0.0625", B: "0.0625", C: "0.0118", D: "0.0250"}
    assert total(found) == Decimal("0.1618")
    assert found[D]["charge_time"] == "2026-03-10T10:07:00Z"
    assert [found[u]["market"] for u in (A, C, D)] == ["Brazil", "India", "North America"]
    assert {r["tier"] for r in found.values()} == {None}
    reply = world[1].get(f"/v1/usage?waba_id={p.WABA}&month={MARCH}", headers=auth())
    assert (reply.json["units"], reply.json["total_cost"]) == (4, "0.1618")


def test_G_2_one_wamid_many_units(world: tuple[Context, Any]) -> None:
    """The aggregated `delivered` POST arriving twice adds nothing; the record ids of one
    message differ only by participant (wamid-only dedupe would merge them)."""
    send(world, *g1_events())
    again = send(world, delivered_to("wamid.G1", T1 + 3, (A, B, C), "group_marketing", "regular"))
    assert again["duplicates"] == 3 and again["records"] == 0
    found = of(records(world), "wamid.G1")
    assert len(found) == 4
    assert {r["version"] for r in found.values()} == {1}
    for who, rec in found.items():
        assert rec["record_id"] == record_id("gmsg", p.PHONE, "wamid.G1", who)


T3 = ts("2026-03-11T09:00:00")


def g3_events() -> list[dict[str, Any]]:
    """C writes in the group at 09:00; a group utility template reaches everyone at 15:00."""
    free = "free_group_customer_service"
    at = ts("2026-03-11T15:00:00")
    return [
        g.group_inbound("wamid.in.C", T3, C),
        delivered_to("wamid.G2", at, EVERYONE, "group_utility", free),
    ]


def test_G_3_group_csw(world: tuple[Context, Any]) -> None:
    """Any member's message opens the group CSW for the whole group: group utility inside it
    is free (`free_customer_service`) for every participant, also those who never wrote."""
    send(
        world,
        *g3_events(),
    )
    found = of(records(world), "wamid.G2")
    assert set(found) == set(EVERYONE)
    assert {
        (r["category"], r["billable"], r["free_reason"], r["cost"], r["source"])
        for r in found.values()
    } == {("group_utility", False, "free_customer_service", "0", "meta")}


def test_G_3_group_csw_without_meta_pricing(world: tuple[Context, Any]) -> None:
    """Where Meta gives only the category, the model's own group CSW makes group utility free
    (`source: derived`); without the member's message it is charged."""
    at = ts("2026-03-11T15:00:00")
    send(world, delivered_to("wamid.before", at - 7 * 3600, (A,), "group_utility"))
    send(world, g.group_inbound("wamid.in.C", T3, C))
    send(world, delivered_to("wamid.G2", at, EVERYONE, "group_utility"))
    found = records(world)
    assert {(r["free_reason"], r["source"]) for r in of(found, "wamid.G2").values()} == {
        ("free_customer_service", "derived")
    }
    assert of(found, "wamid.before")[A]["cost"] == "0.0068"  # 08:00, before C wrote


def test_G_4_no_crossing_to_one_to_one(world: tuple[Context, Any]) -> None:
    """C's group message does not open C's 1:1 CSW: a 1:1 utility template to C is charged."""
    send(
        world,
        *g3_events(),
        one_to_one_utility(C, ts("2026-03-11T15:01:00")),
    )
    [one] = [r for r in records(world) if r["wamid"] == "wamid.1to1"]
    assert (one["user_id"], one["billable"], one["cost"], one["source"]) == (
        C,
        True,
        "0.0014",
        "derived",
    )
    assert "group_id" not in one


def test_G_4_one_to_one_inbound_does_not_open_the_group_csw(world: tuple[Context, Any]) -> None:
    """The other way round: A's 1:1 message opens A's 1:1 CSW only, not the group's."""
    send(
        world,
        p.change(messages=[p.inbound("wamid.in.A", T3, user=A)]),
        delivered_to("wamid.G2", ts("2026-03-11T15:00:00"), (A, C), "group_utility"),
        one_to_one_utility(A, ts("2026-03-11T15:01:00")),
    )
    found = records(world)
    assert {u: r["cost"] for u, r in of(found, "wamid.G2").items()} == {A: "0.0068", C: "0.0014"}
    assert of(found, "wamid.1to1")[A]["free_reason"] == "free_customer_service"


def test_G_5_window_expiry_no_tiers(world: tuple[Context, Any]) -> None:
    """The group CSW ends 24h after the member's message; group utility after it is charged at
    the list rate, never tiered, and adds nothing to the portfolio x market x utility tiers."""
    ctx = world[0]
    send(
        world,
        g.group_inbound("wamid.in.C", T3, C),
        delivered_to("wamid.G3", ts("2026-03-12T10:00:00"), EVERYONE, "group_utility", "regular"),
        one_to_one_utility(A, ts("2026-03-12T11:00:00"), "regular"),
    )
    found = records(world)
    group = of(found, "wamid.G3")
    assert len(group) == 5 and all(r["billable"] for r in group.values())
    assert total(group) == Decimal("0.0252")
    assert {r["tier"] for r in group.values()} == {None}
    bucket = ctx.ledger_keys.bucket(VOLUME_TIER, p.WABA, "Brazil", "utility", MARCH, waba_id=p.WABA)
    members = [m.decode() for m in ctx.ledger_redis.zrange(bucket, 0, -1)]
    assert [m.split("|")[0] for m in members] == ["wamid.1to1"]  # the 1:1 utility only
    assert of(found, "wamid.1to1")[A]["tier"] == "1:100000"


@pytest.mark.parametrize("ptype", ["regular", None, "free_group_customer_service"])
def test_G_6_marketing_in_csw(world: tuple[Context, Any], ptype: str | None) -> None:
    """Group marketing is charged inside the group CSW (Decision 7.3); if Meta says it was
    free, Meta's answer is kept with `discrepancy: group_marketing_free_in_csw`."""
    send(
        world,
        g.group_inbound("wamid.in.C", T3, C),
        delivered_to("wamid.G4", ts("2026-03-11T16:00:00"), EVERYONE, "group_marketing", ptype),
    )
    found = of(records(world), "wamid.G4")
    assert len(found) == 5
    if ptype == "free_group_customer_service":
        assert {(r["billable"], r["free_reason"], r["discrepancy"]) for r in found.values()} == {
            (False, "free_customer_service", "group_marketing_free_in_csw")
        }
    else:
        assert total(found) == Decimal("0.2243")
        assert {r["discrepancy"] for r in found.values()} == {None}


def test_G_7_text_in_csw(world: tuple[Context, Any]) -> None:
    """A group text delivered under pmp-2025-07 is free (`free_customer_service`)."""
    send(
        world,
        g.group_inbound("wamid.in.C", T3, C),
        delivered_to(
            "wamid.G7",
            ts("2026-03-11T17:00:00"),
            EVERYONE,
            "group_service",
            "free_group_customer_service",
        ),
    )
    found = of(records(world), "wamid.G7")
    assert {(r["category"], r["billable"], r["free_reason"]) for r in found.values()} == {
        ("group_service", False, "free_customer_service")
    }
    assert len(found) == 5


def test_G_8_bsuid_participant(world: tuple[Context, Any]) -> None:
    """A participant known only by its business-scoped id: the record's user is the BSUID and
    its market comes from the BSUID's country prefix (`country_source: bsuid`)."""
    bsuid = "IN.839104521"
    status = g.participant_status(
        "wamid.G8",
        "delivered",
        ts("2026-03-13T10:00:00"),
        None,
        category="group_marketing",
        ptype="regular",
        bsuid=bsuid,
    )
    send(world, g.aggregated([status]))
    [rec] = records(world)
    assert (rec["user_id"], rec["country"], rec["country_source"], rec["market"]) == (
        bsuid,
        "IN",
        "bsuid",
        "India",
    )
    assert (rec["cost"], rec["group_id"]) == ("0.0118", g.GROUP)


# -- Meta's sample defects, quarantines, group-level statuses ------------------------------------


def test_meta_sample_defects_are_read(world: tuple[Context, Any]) -> None:
    """`participant_recipient_id` (Meta's misspelling) names the participant; `pricing` nested
    in `conversation` is Meta's pricing."""
    at = ts("2026-03-13T10:00:00")
    statuses = [
        g.participant_status(
            "wamid.GD",
            "delivered",
            at,
            A,
            category="group_marketing",
            ptype="regular",
            misspelt=True,
        ),
        g.participant_status(
            "wamid.GD",
            "delivered",
            at,
            C,
            category="group_utility",
            ptype="free_group_customer_service",
            nested=True,
        ),
    ]
    send(world, g.aggregated(statuses))
    found = of(records(world), "wamid.GD")
    assert (found[A]["category"], found[A]["cost"]) == ("group_marketing", "0.0625")
    assert (found[C]["source"], found[C]["free_reason"]) == ("meta", "free_customer_service")


def test_group_level_sent_and_failed_create_nothing(world: tuple[Context, Any]) -> None:
    """`sent` and `failed` for the whole group (no participant) are no delivery."""
    at = ts("2026-03-13T10:00:00")
    totals = send(
        world,
        g.aggregated([g.group_sent("wamid.GS", at, category="group_marketing", ptype="regular")]),
        g.aggregated([g.group_failed("wamid.GF", at)]),
    )
    assert (totals["events"], totals["quarantined"]) == (2, 0)
    assert records(world) == []


def test_delivered_without_participant_is_quarantined(world: tuple[Context, Any]) -> None:
    """A delivered/read group status that names no participant cannot be charged to anyone."""
    at = ts("2026-03-13T10:00:00")
    statuses = [
        g.participant_status("wamid.GN", s, at, None, category="group_marketing")
        for s in ("delivered", "read")
    ]
    totals = send(world, g.aggregated(statuses))
    assert totals["quarantined"] == 2
    assert quarantined(world) == [WITHOUT_PARTICIPANT] * 2
    assert records(world) == []


def test_group_status_before_per_message_pricing_is_quarantined(
    world: tuple[Context, Any],
) -> None:
    """Groups are priced per message only: a group status before 2025-07-01 is unexpected."""
    early = ts("2025-06-30T23:59:59")
    statuses = [g.participant_status("wamid.GE", "delivered", early, A, category="group_marketing")]
    totals = send(world, g.aggregated(statuses))
    assert totals["quarantined"] == 1
    assert quarantined(world) == [TOO_EARLY]
    assert records(world, "2025-06") == []


# -- pmp-2026-10 (November 2026) -----------------------------------------------------------------

T9 = ts("2026-11-05T09:00:00")


def test_G_9_utility_charged_in_csw(world: tuple[Context, Any]) -> None:
    """From 2026-10-01 the group CSW changes no price: group utility is `regular` inside it
    too, at the list rate, without tiers."""
    send(
        world,
        g.group_inbound("wamid.in.A", T9, A),
        delivered_to("wamid.G9", T9 + 3600, EVERYONE, "group_utility", "regular"),
    )
    found = of(records(world, NOVEMBER), "wamid.G9")
    assert all(r["billable"] and r["tier"] is None for r in found.values())
    assert total(found) == Decimal("0.0252")


def allowance_used_to_998(world: tuple[Context, Any]) -> None:
    """998 1:1 service messages on P1 in November 2026 (to one Brazil user, who wrote)."""
    start = ts("2026-11-04T00:00:00")
    user = "5511922220000"
    inbound = p.change(messages=[p.inbound("wamid.in.U", start, user=user)])
    statuses = [
        p.status(
            f"wamid.S{i:03d}",
            "delivered",
            start + 60 + 60 * i,
            user=user,
            category="service",
            model="PMP",
            pricing_type="free_customer_service",
        )
        for i in range(998)
    ]
    send(world, inbound, *(p.change(statuses=statuses[k : k + 250]) for k in range(0, 998, 250)))


G10 = ts("2026-11-05T11:00:00")


def g10(world: tuple[Context, Any], meta: bool = True) -> None:
    """G-10's deliveries; ``meta``: with Meta's pricing.type (A, B free; C, D, E regular)."""
    allowance_used_to_998(world)
    free = "free_group_customer_service"
    statuses = [
        g.participant_status(
            "wamid.G10",
            "delivered",
            G10 + 1 + i,
            u,
            category="group_service",
            ptype=(free if u in (A, B) else "regular") if meta else None,
        )
        for i, u in enumerate(EVERYONE)
    ]
    send(world, g.group_inbound("wamid.in.A", T9, A), g.aggregated(statuses))


def test_G_10_group_service_and_the_allowance(world: tuple[Context, Any]) -> None:
    """Group service deliveries use the business number's 1,000 free service messages, one per
    delivered participant, in charge-time order with the 1:1 ones; then the service rate."""
    g10(world)
    found = of(records(world, NOVEMBER), "wamid.G10")
    assert {u: (r["free_reason"], r["cost"]) for u, r in found.items()} == {
        A: ("free_tier", "0"),
        B: ("free_tier", "0"),
        C: (None, "0.0014"),
        D: (None, "0.0034"),
        E: (None, "0.0068"),
    }
    assert total(found) == Decimal("0.0116")
    assert {r["tier"] for r in found.values()} == {None}


def test_G_11_sent_pricing_vs_delivered_pricing(world: tuple[Context, Any]) -> None:
    """The participant's `delivered` pricing wins over the group-level `sent` pricing, which
    only fills in for a participant whose status carries none (in any arrival order)."""
    at = ts("2026-11-06T10:00:00")
    free = "free_group_customer_service"
    statuses = [
        g.participant_status(
            "wamid.G11", "delivered", at, C, category="group_utility", ptype="regular"
        ),
        g.participant_status("wamid.G11", "delivered", at + 1, D),
    ]
    send(world, g.aggregated(statuses))
    send(
        world,
        g.aggregated([g.group_sent("wamid.G11", at - 1, category="group_utility", ptype=free)]),
    )
    found = of(records(world, NOVEMBER), "wamid.G11")
    assert (found[C]["billable"], found[C]["cost"], found[C]["discrepancy"]) == (
        True,
        "0.0014",
        None,
    )
    assert (found[D]["free_reason"], found[D]["discrepancy"]) == (
        "free_customer_service",
        "utility_in_csw_free",
    )


def _late_one_to_one(world: tuple[Context, Any]) -> None:
    late = p.status(
        "wamid.late",
        "delivered",
        G10 - 60,
        user="5511933330000",
        category="service",
        model="PMP",
        pricing_type="free_customer_service",
    )
    send(world, p.change(statuses=[late]))


def test_G_12_late_reorder(world: tuple[Context, Any]) -> None:
    """A late 1:1 service delivery at 10:59 takes place 999: A stays free at 1,000, B moves to
    1,001 and is charged as a correction (same record, version 2); C, D, E are unchanged.
    (The deliveries carry no pricing.type here: the places alone decide, as in S-7.)"""
    g10(world, meta=False)
    before = of(records(world, NOVEMBER), "wamid.G10")
    _late_one_to_one(world)
    found = records(world, NOVEMBER)
    assert of(found, "wamid.late")["5511933330000"]["free_reason"] == "free_tier"
    after = of(found, "wamid.G10")
    assert (after[A]["free_reason"], after[A]["version"]) == ("free_tier", 1)
    assert (after[B]["billable"], after[B]["cost"], after[B]["version"]) == (True, "0.0068", 2)
    assert after[B]["record_id"] == before[B]["record_id"]
    assert {u: after[u] for u in (C, D, E)} == {u: before[u] for u in (C, D, E)}


def test_G_12_late_reorder_where_meta_said_free_keeps_metas_answer(
    world: tuple[Context, Any],
) -> None:
    """As G-12, but B's delivery carried Meta's ``free_group_customer_service``: Meta's answer
    wins over the new place (rule book 9.3, S-8): B stays free, re-emitted marked
    ``service_allowance_mismatch``."""
    g10(world)
    _late_one_to_one(world)
    b = of(records(world, NOVEMBER), "wamid.G10")[B]
    assert (b["billable"], b["cost"], b["source"]) == (False, "0", "meta")
    assert (b["discrepancy"], b["version"]) == ("service_allowance_mismatch", 2)


def test_S_12_groups_share_the_number_allowance(world: tuple[Context, Any]) -> None:
    """S-12 (see G-10, G-12): 1:1 and group service deliveries draw on one allowance per
    business number. After 998 1:1 units, G-10's group text takes places 999 to 1,003 (A and B
    free); the next 1:1 service delivery is place 1,004: charged at the service rate."""
    g10(world, meta=False)
    after = p.status("wamid.after", "delivered", G10 + 60, user="5511933330001",
                     category="service", model="PMP")  # fmt: skip
    send(world, p.change(statuses=[after]))
    found = records(world, NOVEMBER)
    group = of(found, "wamid.G10")
    assert [group[u]["free_reason"] for u in (A, B)] == ["free_tier", "free_tier"]
    one = of(found, "wamid.after")["5511933330001"]
    assert (one["billable"], one["free_reason"], one["cost"]) == (True, None, "0.0068")


def test_G_2_deliveries_in_the_same_second_are_distinct_units(world: tuple[Context, Any]) -> None:
    """Participants' statuses may carry the same timestamp: still one unit (and one claim) per
    participant, whichever POST brings them, and a second arrival adds nothing."""
    at = ts("2026-03-13T10:00:00")
    statuses = [
        g.participant_status("wamid.GT", "delivered", at, u, category="group_marketing")
        for u in EVERYONE
    ]
    first = send(world, g.aggregated(statuses[:2]))
    rest = send(world, g.aggregated(statuses[2:]))  # a later POST, a later drain
    again = send(world, g.aggregated(statuses))
    assert (first["applied"], rest["applied"], again["duplicates"]) == (2, 3, 5)
    assert set(of(records(world), "wamid.GT")) == set(EVERYONE)


# -- quotes: POST /v1/quote for a group send ----------------------------------------------------


def group_quote(world: tuple[Context, Any], **body: Any) -> dict[str, Any]:
    request = {"phone_number_id": p.PHONE, "waba_id": p.WABA, "group_id": g.GROUP, **body}
    reply = world[1].post("/v1/quote", json=request, headers=auth())
    assert reply.status_code == 200, reply.json
    answer: dict[str, Any] = reply.json
    return answer


def test_group_quote_is_per_participant_at_its_market(world: tuple[Context, Any]) -> None:
    """A quote for a group send prices each participant at its own market, and sums them."""
    at = "2026-03-10T10:00:00Z"
    answer = group_quote(world, category="marketing", participants=[A, C, D], at=at)
    assert [(q["user_id"], q["market"], q["cost"]) for q in answer["participants"]] == [
        (A, "Brazil", "0.0625"),
        (C, "India", "0.0118"),
        (D, "North America", "0.0250"),
    ]
    assert (answer["cost"], answer["billable"], answer["group_id"]) == ("0.0993", True, g.GROUP)
    assert (answer["category"], answer["reason"]) == ("group_marketing", "per_message_charge")


def test_group_quote_sees_the_group_window_and_members(world: tuple[Context, Any]) -> None:
    """Inside the group CSW group utility quotes free; without `participants` the quote is
    for the members the group's deliveries named so far."""
    send(world, *g1_events(), g.group_inbound("wamid.in.C", T3, C))
    answer = group_quote(world, category="utility", at="2026-03-11T15:00:00Z")
    assert [q["user_id"] for q in answer["participants"]] == sorted((A, B, C, D))
    assert (answer["reason"], answer["cost"], answer["billable"]) == (
        "utility_free_in_csw",
        "0",
        False,
    )
    later = group_quote(world, category="utility", participants=[A], at="2026-03-12T10:00:00Z")
    assert later["cost"] == "0.0068"


def test_group_quote_takes_allowance_places_in_turn(world: tuple[Context, Any]) -> None:
    """From 2026-10 a group text takes one place of the number's service allowance per
    participant: with 998 used, A and B are free and C is charged, as G-10 bills it."""
    allowance_used_to_998(world)
    send(world, g.group_inbound("wamid.in.A", T9, A))
    answer = group_quote(
        world, category="service", template=False, participants=[A, B, C], at="2026-11-05T11:00:00Z"
    )
    assert [(q["free_reason"], q["cost"]) for q in answer["participants"]] == [
        ("free_tier", "0"),
        ("free_tier", "0"),
        (None, "0.0014"),
    ]
    assert [q["allowance"]["used"] for q in answer["participants"]] == [998, 999, 1000]
    assert answer["cost"] == "0.0014"


@pytest.mark.parametrize(
    "body",
    [
        {"category": "marketing"},  # no participants, and the group named none yet
        {"category": "marketing", "participants": []},
        {"category": "marketing", "participants": [A, A]},
        {"category": "marketing", "participants": ["+55 11"]},
        {"category": "authentication", "participants": [A]},  # no authentication in groups
        {"category": "marketing", "participants": [A], "group_id": "bad id"},
    ],
    ids=["no-participants", "empty", "repeated", "malformed", "authentication", "bad-group"],
)
def test_bad_group_quotes_are_400(world: tuple[Context, Any], body: dict[str, Any]) -> None:
    request = {"phone_number_id": p.PHONE, "waba_id": p.WABA, "group_id": g.GROUP, **body}
    assert world[1].post("/v1/quote", json=request, headers=auth()).status_code == 400


# -- the model alone: arrival order and redelivery do not matter ---------------------------------

G = group_pair(p.WABA, p.PHONE, g.GROUP)


def model_events() -> list[Event]:
    """G-3 and G-6 as parsed events, with a group-level `sent` and some `read`s."""
    utility, marketing = ts("2026-03-11T15:00:00"), ts("2026-03-11T16:00:00")
    events: list[Event] = [
        Inbound(G, "wamid.in.C", T3, "text", False),
        Status(G, "wamid.G2", "sent", utility - 1, pricing=Pricing(category="group_utility")),
        Status(G, "wamid.G4", "sent", marketing - 1),
    ]
    for i, who in enumerate(EVERYONE):
        events.append(Status(G, "wamid.G2", "delivered", utility + i, participant=who))
        mine = Pricing(model="PMP", category="group_marketing", type="regular")
        events.append(Status(G, "wamid.G4", "read", marketing + 60 + i, None, mine, (), who))
        if i % 2:
            events.append(Status(G, "wamid.G4", "delivered", marketing + i, participant=who))
    return events


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_group_units_do_not_depend_on_arrival_order(data: st.DataObject) -> None:
    """Any order of the events, with any of them twice, gives the same group units."""
    events = model_events()
    expected = evaluate(G, history_of(events), UTC, BOOK)
    assert len(expected.units) == 10 and not expected.pending
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=5))
    shuffled = data.draw(st.permutations(events + repeats))
    assert evaluate(G, history_of(shuffled), UTC, BOOK) == expected


def test_a_category_groups_do_not_have_stays_unrated(world: tuple[Context, Any]) -> None:
    """Authentication templates do not exist in groups: such a delivery is kept, but never
    priced as a 1:1 authentication message (no rate: cost null, listed as unrated); Meta's
    plain `marketing` on a group delivery is group marketing."""
    at = ts("2026-03-13T10:00:00")
    statuses = [
        g.participant_status("wamid.GA", "delivered", at, A, category="authentication"),
        g.participant_status("wamid.GA", "delivered", at, C, category="marketing"),
    ]
    send(world, g.aggregated(statuses))
    found = of(records(world), "wamid.GA")
    assert (found[A]["category"], found[A]["cost"]) == ("group_authentication", None)
    assert (found[C]["category"], found[C]["cost"]) == ("group_marketing", "0.0118")
    reply = world[1].get(f"/v1/usage?waba_id={p.WABA}&month={MARCH}", headers=auth())
    assert reply.json["unrated_units"] == 1


def test_group_marketing_lite_is_priced_as_marketing_lite_and_noted(
    world: tuple[Context, Any],
) -> None:
    """`group_marketing_lite` (seen only in Meta's analytics enum) takes the marketing_lite
    rate (the card's marketing rate where it has none), no tiers, noted as seen."""
    at = ts("2026-03-13T10:00:00")
    status = g.participant_status("wamid.GL", "delivered", at, A, category="group_marketing_lite")
    send(world, g.aggregated([status]))
    [rec] = records(world)
    assert (rec["category"], rec["cost"], rec["tier"]) == ("group_marketing_lite", "0.0625", None)
    assert rec["discrepancy"] == "group_marketing_lite_seen"

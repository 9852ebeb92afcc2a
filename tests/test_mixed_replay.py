"""Issue 11's invariant: a month of mixed 1:1, group and call webhooks, replayed twice in any
order (each body a batch, as the drain applies it), gives the same records and usage as the
webhooks applied once in time order. The bodies are Meta's shapes (tests/payloads.py,
tests/group_payloads.py, tests/call_payloads.py) parsed by the real parser; the ledger is the
real apply script on the fakeredis twin, a real Redis and the real cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.core.events import Event
from processor.core.parse import parse_body
from tests import call_payloads as c
from tests import group_payloads as g
from tests import payloads as p
from tests.ledger_helpers import write_config
from tests.test_calls_properties import CALLING_TIERS
from tests.test_ledger_properties import (  # the backends' fixtures are used here too
    PROPERTY,
    Backend,
    applied,
    backend,  # noqa: F401
    on_cluster,  # noqa: F401
    real,  # noqa: F401
)

T0 = 1_795_000_000  # 2026-11-18: pmp-2026-10 (the number's service allowance, cut to 2 here)
USERS = ("5511900000001", "5511900000002")
MEMBERS = ("5511900000011", "5511900000012", "5511900000013")
GROUP_CATEGORIES = ("group_service", "group_marketing", "group_utility")
PRICING_TYPES = (None, "regular", "free_customer_service", "free_group_customer_service")


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_config(tmp_path_factory.mktemp("config"))
    (directory / "calling_tiers.csv").write_text(CALLING_TIERS)
    return directory


Body = tuple[int, dict[str, Any]]  # (its time, the document)


@st.composite
def month(draw: st.DrawFn) -> list[Body]:
    """Webhook bodies of one number: 1:1 messages and their statuses, a group's messages and
    per-participant statuses, calls; times within three days, so windows overlap."""

    def at() -> int:
        return T0 + draw(st.integers(0, 3 * 86_400))

    bodies: list[Body] = []
    for n in range(draw(st.integers(0, 4))):  # 1:1
        user, t = draw(st.sampled_from(USERS)), at()
        kind = draw(st.sampled_from(["inbound", "service", "utility", "marketing"]))
        if kind == "inbound":
            bodies.append((t, p.body(p.change(messages=[p.inbound(f"wamid.in{n}", t, user)]))))
            continue
        ptype = draw(st.sampled_from(PRICING_TYPES[:3]))
        for state, dt in [("sent", 0), ("delivered", 5), ("read", 60)][: draw(st.integers(1, 3))]:
            item = p.status(f"wamid.o{n}", state, t + dt, user, category=kind, model="PMP",
                            pricing_type=ptype)  # fmt: skip
            bodies.append((t + dt, p.body(p.change(statuses=[item]))))
    for n in range(draw(st.integers(0, 3))):  # a group
        t = at()
        if draw(st.booleans()):
            writer = draw(st.sampled_from(MEMBERS))
            bodies.append((t - 600, p.body(g.group_inbound(f"wamid.gin{n}", t - 600, writer))))
        category = draw(st.sampled_from(GROUP_CATEGORIES))
        wamid = f"wamid.g{n}"
        bodies.append((t, p.body(p.change(statuses=[g.group_sent(wamid, t, category=category)]))))
        reached = draw(st.lists(st.sampled_from(MEMBERS), unique=True, max_size=3))
        for state, dt in [("delivered", 2), ("read", 90)][: draw(st.integers(1, 2))]:
            statuses = [
                g.participant_status(wamid, state, t + dt + i, who, category=category,
                                     ptype=draw(st.sampled_from(PRICING_TYPES)))
                for i, who in enumerate(reached)
            ]  # fmt: skip
            if statuses:
                bodies.append((t + dt, p.body(g.aggregated(statuses))))
    for n in range(draw(st.integers(0, 3))):  # calls
        user, end = draw(st.sampled_from(USERS)), at()
        uic = draw(st.integers(0, 3)) == 0
        duration = draw(st.sampled_from([None, 6, 7, 56, 61, 90]))
        call_id = f"wacid.{n}"
        if draw(st.booleans()):
            begin = end - 100
            bodies.append((begin, c.calls_body([c.connect(call_id, begin, user, uic)])))
        if not uic and draw(st.booleans()):
            accepted = c.call_status(call_id, "ACCEPTED", end - 95, user)
            bodies.append((end - 95, c.calls_body(statuses=[accepted])))
        terminate = c.terminate(call_id, end, duration, user, uic)
        bodies.append((end, c.calls_body([terminate])))
    return bodies


def events_of(body: dict[str, Any]) -> list[Event]:
    parsed = parse_body(json.dumps(body).encode())
    assert not parsed.rejected, parsed.rejected
    return list(parsed.events)


@PROPERTY
@given(bodies=month(), data=st.data())
def test_a_mixed_month_replayed_twice_in_any_order_gives_the_same_records(
    backend: Backend,  # noqa: F811 (the fixture imported above)
    config_dir: Path,
    bodies: list[Body],
    data: st.DataObject,
) -> None:
    in_time = [events_of(doc) for _, doc in sorted(bodies, key=lambda b: b[0])]
    reference = applied(backend, config_dir, in_time)
    first = data.draw(st.permutations(bodies))
    second = data.draw(st.permutations(bodies))
    replayed = [events_of(doc) for _, doc in [*first, *second]]
    assert applied(backend, config_dir, replayed) == reference


def test_the_mixed_month_strategy_makes_every_kind_of_unit(config_dir: Path) -> None:
    """The property above sees 1:1 messages, group deliveries and calls together (else it could
    pass without exercising them): one fixed month through the twin."""
    import fakeredis

    t = T0 + 3_600
    one_to_one = p.status("wamid.o", "delivered", t + 60, USERS[0], category="service", model="PMP")
    member = g.participant_status(
        "wamid.g", "delivered", t + 70, MEMBERS[0], category="group_marketing"
    )
    bodies = [
        p.body(p.change(messages=[p.inbound("wamid.in", t, USERS[0])])),
        p.body(p.change(statuses=[one_to_one])),
        p.body(g.aggregated([member])),
        c.calls_body([c.terminate("wacid.1", t + 80, 61, USERS[1])]),
    ]
    twin = fakeredis.FakeRedis()
    seen = applied(lambda: (twin, "p", lambda: None), config_dir, [events_of(b) for b in bodies])
    kinds = sorted((r["kind"], r.get("group_id") is not None) for r in seen["records"].values())
    assert kinds == [("call", False), ("message", False), ("message", True)]

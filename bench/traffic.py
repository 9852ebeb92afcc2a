"""Meta-shaped webhook traffic for the benchmark, and the outcome it must produce.

Per-message pricing (August 2026, era ``pmp-2025-07``, priced by Meta's USD card of
2026-07-01): many users on a few business numbers of a few WABAs. Each outbound message gets
the statuses Meta sends (``sent``, ``delivered``, ``read``; ``failed`` for some), with Meta's
``pricing`` on ``sent`` and on one of ``delivered``/``read``, and the usual disorder: ``read``
arriving before ``delivered``, ``delivered`` without ``sent``, ``read`` without ``delivered``,
messages only ``sent``. Some users write first (inbound messages), which opens their customer
service window: utility templates and free-form (service) replies inside it are free. A few
bodies are posted twice and a few single statuses are sent again (Meta's at-least-once
delivery).

The shapes mirror ``tests/payloads.py`` (copied here so that the benchmark does not import the
tests). The expected outcome is computed from the rule book, independently of the processor:
one record per message delivered (or read), its category, whether it is billable and why not.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

H = 3_600
MONTH = "2026-08"
MONTH_START = int(datetime(2026, 8, 1, tzinfo=UTC).timestamp())
FREE_CS = "free_customer_service"

# (waba_id, [phone_number_id, ...]); WABAs not in config/wabas.csv bill in USD, UTC.
ACCOUNTS = (
    ("310000000000001", ("420000000000002", "420000000000003")),
    ("310000000000004", ("420000000000005",)),
    ("310000000000006", ("420000000000007",)),
)
# Calling code, digits after it, market (config/markets.csv), share of users.
COUNTRIES = (
    ("5511", 9, "Brazil", 0.45),
    ("91", 10, "India", 0.25),
    ("52", 10, "Mexico", 0.15),
    ("62812", 8, "Indonesia", 0.15),
)
# Status sequences in arrival order; "P" marks the statuses that carry Meta's pricing.
SCENARIOS = (
    (0.58, (("sent", True), ("delivered", True), ("read", False))),
    (0.10, (("sent", True), ("read", False), ("delivered", True))),  # read before delivered
    (0.08, (("delivered", True), ("read", False))),  # delivered without sent
    (0.07, (("sent", True), ("read", True))),  # read without delivered
    (0.10, (("sent", True), ("delivered", True))),  # not read
    (0.05, (("sent", True), ("failed", False))),
    (0.02, (("sent", True),)),  # never delivered
)
BODY_REDELIVERY = 0.02  # share of bodies posted twice
STATUS_REPEAT = 0.02  # share of statuses sent again on their own


@dataclass(frozen=True)
class Expected:
    """The outcome the records must show: one record per delivered message."""

    records: dict[str, tuple[str, str, str, bool, str | None, int]]
    # wamid -> (waba_id, market, category, billable, free_reason, charge_time)
    pending: frozenset[str] = frozenset()  # delivered, but no status told the category

    def usage(self) -> Counter[tuple[str, str, str, bool, str | None]]:
        """Unit counts per (waba_id, market, category, billable, free_reason)."""
        return Counter(rec[:5] for rec in self.records.values())


@dataclass
class Traffic:
    bodies: list[bytes]
    statuses: int  # status items over all bodies, redeliveries included
    inbound: int  # inbound message items over all bodies
    messages: int  # distinct outbound messages
    pairs: int  # distinct (business number, user) pairs
    status_batch: int
    expected: Expected

    @property
    def events(self) -> int:
        return self.statuses + self.inbound


@dataclass
class _Message:
    wamid: str
    waba: str
    phone: str
    user: str
    market: str
    category: str
    sent: int
    free: bool
    scenario: tuple[tuple[str, bool], ...]


def generate(messages: int, status_batch: int, seed: int = 1) -> Traffic:
    """Traffic with about ``messages`` outbound messages, statuses in bodies of up to
    ``status_batch`` (one business number per body, as Meta batches them)."""
    rng = random.Random(seed)
    outbound, inbound = _conversations(rng, messages)
    timeline = _timeline(rng, outbound, inbound)
    items = [(waba, phone, item, key) for _, waba, phone, item, key in timeline]
    docs = _bodies(rng, items, status_batch)
    bodies = [json.dumps(b, separators=(",", ":")).encode() for b in docs]
    pairs = {(m.phone, m.user) for m in outbound} | {(p, u) for _, _, p, u in inbound}
    return Traffic(
        bodies=bodies,
        statuses=sum(_count(b, "statuses") for b in docs),
        inbound=sum(_count(b, "messages") for b in docs),
        messages=len(outbound),
        pairs=len(pairs),
        status_batch=status_batch,
        expected=expected_from(bodies),
    )


# -- who writes to whom, and when ----------------------------------------------------------------


def _user(rng: random.Random, n: int) -> tuple[str, str]:
    code, digits, market, _ = rng.choices(COUNTRIES, [c[3] for c in COUNTRIES])[0]
    lead = "9" if code in ("5511", "91") else "1" if code == "52" else ""
    rest = digits - len(lead)
    return f"{code}{lead}{n % 10**rest:0{rest}d}", market


def _conversations(
    rng: random.Random, messages: int
) -> tuple[list[_Message], list[tuple[int, str, str, str]]]:
    """Outbound messages and inbound messages (t, waba, phone, user), per user."""
    outbound: list[_Message] = []
    inbound: list[tuple[int, str, str, str]] = []
    n = 0
    while len(outbound) < messages:
        n += 1
        waba, phones = rng.choice(ACCOUNTS)
        phone = rng.choice(phones)
        user, market = _user(rng, 10_000_000 + n * 7919)
        start = MONTH_START + rng.randrange(2 * 24, 24 * 24) * H + rng.randrange(H)
        wrote = start + 30 * H if rng.random() < 0.35 else None
        if wrote is not None:
            inbound.append((wrote, waba, phone, user))
            if rng.random() < 0.1:  # the user writes again later the same day
                inbound.append((wrote + rng.randrange(2, 4) * H, waba, phone, user))
        for k in range(rng.choice((1, 1, 2, 3, 4))):
            outbound.append(_message(rng, n, k, waba, phone, user, market, start, wrote))
    return outbound, inbound


def _message(
    rng: random.Random,
    n: int,
    k: int,
    waba: str,
    phone: str,
    user: str,
    market: str,
    start: int,
    wrote: int | None,
) -> _Message:
    """One outbound message; sent times keep hours away from any window edge."""
    in_csw = wrote is not None and rng.random() < 0.6
    if in_csw:
        assert wrote is not None
        sent = wrote + rng.randrange(1 * H, 18 * H)  # the CSW is [wrote, wrote + 24h)
        category = rng.choices(("service", "utility", "marketing"), (0.4, 0.4, 0.2))[0]
    else:
        sent = start + rng.randrange(0, 26 * H)  # before the user wrote (if ever)
        if wrote is not None and rng.random() < 0.5:
            sent = wrote + rng.randrange(30 * H, 60 * H)  # after the CSW closed
        category = rng.choices(("marketing", "utility", "authentication"), (0.6, 0.3, 0.1))[0]
    free = category == "service" or (category == "utility" and in_csw)
    scenario = rng.choices([s[1] for s in SCENARIOS], [s[0] for s in SCENARIOS])[0]
    wamid = f"wamid.HBgM{n:09d}{k}FQIAERgS{rng.getrandbits(40):010X}"
    return _Message(wamid, waba, phone, user, market, category, sent, free, scenario)


def _pricing(message: _Message) -> dict[str, Any]:
    return {
        "billable": not message.free,
        "pricing_model": "PMP",
        "type": FREE_CS if message.free else "regular",
        "category": message.category,
    }


def _status(message: _Message, state: str, t: int, priced: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": message.wamid,
        "status": state,
        "timestamp": str(t),
        "recipient_id": message.user,
    }
    if priced:
        item["pricing"] = _pricing(message)
    if state == "failed":
        item["errors"] = [{"code": 131049, "title": "This message was not delivered"}]
    return item


def _inbound(wamid: str, t: int, user: str) -> dict[str, Any]:
    return {
        "from": user,
        "id": wamid,
        "timestamp": str(t),
        "type": "text",
        "text": {"body": "hello"},
    }


def _times(rng: random.Random, message: _Message) -> dict[str, int]:
    delivered = message.sent + rng.randrange(1, 30)
    read = delivered + rng.randrange(20, 1800)
    return {"sent": message.sent, "delivered": delivered, "read": read, "failed": delivered}


def _timeline(
    rng: random.Random, outbound: list[_Message], inbound: list[tuple[int, str, str, str]]
) -> list[tuple[float, str, str, dict[str, Any], str]]:
    """Every item with its arrival time: event time plus network jitter, plus the disorder
    of each scenario (a status listed later arrives later, whatever its timestamp)."""
    timeline: list[tuple[float, str, str, dict[str, Any], str]] = []
    for i, (t, waba, phone, user) in enumerate(inbound):
        item = _inbound(f"wamid.IN{i:09d}{rng.getrandbits(32):08X}", t, user)
        timeline.append((t + rng.random(), waba, phone, item, "messages"))
    for message in outbound:
        times = _times(rng, message)
        arrival = float(message.sent)
        for state, priced in message.scenario:
            arrival = max(arrival, times[state]) + rng.random() * 3
            item = _status(message, state, times[state], priced)
            timeline.append((arrival, message.waba, message.phone, item, "statuses"))
    timeline.sort(key=lambda x: x[0])
    return timeline


# -- bodies --------------------------------------------------------------------------------------


def _value(phone: str, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": f"55119{phone[-8:]}", "phone_number_id": phone},
    }
    if key == "messages":
        value["contacts"] = [{"profile": {"name": "Ana"}, "wa_id": items[0]["from"]}]
    value[key] = items
    return value


def _body(waba: str, phone: str, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    change = {"field": "messages", "value": _value(phone, key, items)}
    return {"object": "whatsapp_business_account", "entry": [{"id": waba, "changes": [change]}]}


def _bodies(
    rng: random.Random, items: list[tuple[str, str, dict[str, Any], str]], status_batch: int
) -> list[dict[str, Any]]:
    """Bodies in arrival order: inbound messages one per body, statuses batched per business
    number; then the redeliveries (whole bodies, single statuses), spliced in further on."""
    bodies: list[dict[str, Any]] = []
    later: list[tuple[int, dict[str, Any]]] = []  # (index it arrives at, body)
    open_batches: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for waba, phone, item, key in items:
        if key == "messages":
            bodies.append(_body(waba, phone, key, [item]))
            continue
        batch = open_batches.setdefault((waba, phone), [])
        batch.append(item)
        if len(batch) >= status_batch:
            bodies.append(_body(waba, phone, key, batch))
            open_batches[(waba, phone)] = []
        if rng.random() < STATUS_REPEAT:  # the same status again, on its own
            later.append((len(bodies) + rng.randrange(1, 400), _body(waba, phone, key, [item])))
    for (waba, phone), batch in open_batches.items():
        if batch:
            bodies.append(_body(waba, phone, "statuses", batch))
    for i, body in enumerate(list(bodies)):
        if rng.random() < BODY_REDELIVERY:
            later.append((i + rng.randrange(1, 400), body))
    return _splice(bodies, later)


def _splice(bodies: list[dict[str, Any]], later: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    later.sort(key=lambda x: x[0])
    out: list[dict[str, Any]] = []
    j = 0
    for i, body in enumerate(bodies):
        while j < len(later) and later[j][0] <= i:
            out.append(later[j][1])
            j += 1
        out.append(body)
    out.extend(body for _, body in later[j:])
    return out


def _count(body: dict[str, Any], key: str) -> int:
    return sum(len(change["value"].get(key, ())) for e in body["entry"] for change in e["changes"])


# -- the outcome ---------------------------------------------------------------------------------


def expected_from(bodies: list[bytes]) -> Expected:
    """The records that ``bodies`` must produce, read from the bodies themselves (so that any
    slice of the traffic has its own expectation)."""
    seen: dict[str, dict[str, Any]] = {}
    for raw in bodies:
        doc = json.loads(raw)
        for entry in doc["entry"]:
            for change in entry["changes"]:
                for item in change["value"].get("statuses", ()):
                    _note(seen.setdefault(item["id"], {"waba": entry["id"], "times": []}), item)
    records, pending = {}, set()
    for wamid, facts in seen.items():
        if not facts["times"]:
            continue  # never delivered: nothing is charged
        pricing = facts.get("pricing")
        if pricing is None:
            pending.add(wamid)  # delivered, category not known yet
            continue
        free = pricing["type"] == FREE_CS
        records[wamid] = (
            facts["waba"],
            market_of(facts["user"]),
            pricing["category"],
            not free,
            FREE_CS if free else None,
            min(facts["times"]),
        )
    return Expected(records, frozenset(pending))


def _note(facts: dict[str, Any], item: dict[str, Any]) -> None:
    if item["status"] in ("delivered", "read"):
        facts["times"].append(int(item["timestamp"]))
    if "pricing" in item:
        facts["pricing"] = item["pricing"]
        facts["user"] = item["recipient_id"]


def market_of(user: str) -> str:
    for code, _, market, _ in COUNTRIES:
        if user.startswith(code):
            return market
    raise ValueError(user)

"""Typed events parsed from Meta's ``messages`` webhooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Status names, in the order a message normally goes through them.
SENT, DELIVERED, READ, FAILED, PLAYED = "sent", "delivered", "read", "failed", "played"
STATUSES = frozenset({SENT, DELIVERED, READ, FAILED, PLAYED})


@dataclass(frozen=True, slots=True)
class Pair:
    """A business number and a user: the unit every window is kept for."""

    waba_id: str
    phone_number_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Pricing:
    """``statuses[].pricing``: Meta's classification of one outbound message."""

    billable: bool | None = None
    model: str | None = None  # "CBP" | "PMP" | "NBP"
    category: str | None = None  # normalised: "authentication-international" -> "..._international"
    type: str | None = None  # PMP: regular | free_customer_service | free_entry_point
    subtype: str | None = None  # verbatim when Meta sends it (e.g. "paid_exempt"); never read


@dataclass(frozen=True, slots=True)
class Conversation:
    """``statuses[].conversation``: Meta's conversation (CBP) or entry-point window (PMP)."""

    id: str | None = None
    expires_at: int | None = None  # only on ``sent``
    origin: str | None = None  # normalised like a category


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from the user to the business number."""

    pair: Pair
    wamid: str
    timestamp: int
    msg_type: str
    referral: bool

    @property
    def claim_id(self) -> str:
        return f"in|{self.pair.phone_number_id}|{self.wamid}|{self.timestamp}"


@dataclass(frozen=True, slots=True)
class Status:
    """A status of an outbound message (``sent``, ``delivered``, ``read``, ``failed``...)."""

    pair: Pair
    wamid: str
    status: str
    timestamp: int
    conversation: Conversation | None = None
    pricing: Pricing | None = None
    error_codes: tuple[int, ...] = ()
    participant: str | None = None  # a group delivery's participant (phone number or BSUID)

    @property
    def claim_id(self) -> str:
        if self.participant is not None:  # one group message: one status per participant
            who = f"{self.wamid}|{self.participant}"
            return f"st|{self.pair.phone_number_id}|{who}|{self.status}|{self.timestamp}"
        return f"st|{self.pair.phone_number_id}|{self.wamid}|{self.status}|{self.timestamp}"

    @property
    def history_key(self) -> str:
        """Where the pair's history keeps this status: the wamid, or for a group delivery
        ``wamid|participant`` (one group message is up to 8 deliveries)."""
        if self.participant is None:
            return self.wamid
        return f"{self.wamid}|{self.participant}"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One ``calls`` webhook item (``connect``, ``terminate``) or call status (``RINGING``,
    ``ACCEPTED``, ``REJECTED``) of one call (rule book §8.3); times in Unix seconds."""

    pair: Pair  # the user is the callee of a BIC, the caller of a UIC
    call_id: str
    event: str  # connect | terminate | ringing | accepted | rejected
    timestamp: int
    direction: str | None = None  # business_initiated | user_initiated (None: a call status)
    status: str | None = None  # terminate: COMPLETED | FAILED (upper case)
    start_time: int | None = None
    end_time: int | None = None
    duration: int | None = None

    @property
    def wamid(self) -> str:
        """What logs and quarantine name the event by (calls have no message id)."""
        return f"call:{self.call_id}"

    @property
    def claim_id(self) -> str:
        return f"call|{self.pair.phone_number_id}|{self.call_id}|{self.event}|{self.timestamp}"


Event = Inbound | Status | CallEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """One item that could not be understood: quarantined with its reason and place."""

    reason: str
    path: str
    item: Any = None


@dataclass(frozen=True, slots=True)
class ParsedBody:
    events: tuple[Event, ...]
    rejected: tuple[Rejected, ...]
    ignored: int  # changes of other fields/objects (templates, account updates...)

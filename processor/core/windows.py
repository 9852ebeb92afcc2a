"""The windows the model keeps for one pair while it walks the pair's history.

The customer service window (CSW), the entry-point (FEP) window and the open conversations,
each a half-open interval ``[start, end)``; :class:`WalkState` is also what a trimmed history
keeps of the events it forgot (``PairHistory.base``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Window:
    """An open conversation or FEP window ``[start, end)``."""

    record_id: str
    category: str
    start: int
    end: int
    policy: str
    meta_id: str | None = None

    def covers(self, t: int) -> bool:
        return self.start <= t < self.end


@dataclass
class WalkState:
    """What the walk knows at one moment: the CSW's end, an entry point waiting for its first
    reply, the FEP window, the open conversations (by category and by Meta's id)."""

    csw_end: int | None = None
    armed_at: int | None = None  # an entry-point inbound waiting for the first reply
    fep: Window | None = None
    open: dict[str, Window] = field(default_factory=dict)  # category -> conversation
    meta: dict[str, Window] = field(default_factory=dict)  # Meta conversation id -> window

    def csw_open(self, t: int) -> bool:
        return self.csw_end is not None and t < self.csw_end

    def any_open(self, t: int, among: frozenset[str] | None = None) -> Window | None:
        """The earliest open conversation covering ``t`` (of a category in ``among``)."""
        windows = self.open.values()
        covering = [w for w in windows if w.covers(t) and (among is None or w.category in among)]
        return min(covering, key=lambda w: (w.start, w.record_id)) if covering else None

    def dump(self) -> dict[str, Any]:
        return {
            "csw": self.csw_end,
            "armed": self.armed_at,
            "fep": asdict(self.fep) if self.fep else None,
            "open": {k: asdict(w) for k, w in self.open.items()},
            "meta": {k: asdict(w) for k, w in self.meta.items()},
        }

    @classmethod
    def load(cls, doc: dict[str, Any] | None) -> WalkState:
        if not doc:
            return cls()
        return cls(
            csw_end=doc["csw"],
            armed_at=doc["armed"],
            fep=Window(**doc["fep"]) if doc["fep"] else None,
            open={k: Window(**w) for k, w in doc["open"].items()},
            meta={k: Window(**w) for k, w in doc["meta"].items()},
        )

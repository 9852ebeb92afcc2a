"""Every Redis key the processor uses, built in one place under one prefix.

Key                                    Type    Lifetime
{p}:inbox                              stream  webhook bodies; trimmed after ARCHIVE_RETENTION_DAYS
{p}:drain:ticket                       string  "a drain job is queued" (seconds)
{p}:c:{digest}                         string  claim of an applied event (DEDUP_TTL_DAYS)
{p}:pair:{phone_number_id}:{user_id}   hash    window history of a pair (PAIR_HORIZON_DAYS idle)
{p}:rec:{waba_id}:{month}              hash    record_id -> latest record (RECORDS_RETENTION_DAYS)
{p}:usage:{waba_id}:{month}            hash    usage line -> unit count (RECORDS_RETENTION_DAYS)
{p}:b:{scope}:...:{month}              zset    ordered units of an allowance / tier bucket
                                               (members "wamid|waba_id|month|record_id"),
{p}:b:...:{month}:t                    string  bounds of its members' tables (month end + horizon)
{p}:records                            stream  every record version (RECORDS_FEED_MAXLEN)
{p}:months                             set     "waba_id|month" pairs that have records
{p}:phones                             hash    phone_number_id -> waba_id (for quotes)
{p}:pending:{waba_id}                  hash    delivered messages whose category is unknown
{p}:quarantine                         stream  items that could not be applied (QUARANTINE_MAXLEN)
{p}:stats                              hash    event counters for /metrics
{p}:latency                            hash    processing latency histogram for /metrics
{p}:alerts                             hash    alert id -> alert JSON (see store/alerts.py)
{p}:alerts:outbox                      stream  alert ids waiting for delivery

Not Redis-Cluster ready: one event's script touches its pair, its units and shared buckets.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from processor.core.events import Pair

GROUP = "billing"  # the consumer group of the inbox stream


@dataclass(frozen=True)
class Keys:
    prefix: str = "wab"

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def inbox(self) -> str:
        return self._k("inbox")

    @property
    def drain_ticket(self) -> str:
        return self._k("drain", "ticket")

    def claim(self, claim_id: str) -> str:
        digest = hashlib.blake2b(claim_id.encode(), digest_size=12).digest()
        return self._k("c", base64.urlsafe_b64encode(digest).decode())

    def pair(self, pair: Pair) -> str:
        return self._k("pair", pair.phone_number_id, pair.user_id)

    @property
    def records_prefix(self) -> str:
        return self._k("rec", "")

    def records(self, waba_id: str, month: str) -> str:
        return f"{self.records_prefix}{waba_id}:{month}"

    @property
    def usage_prefix(self) -> str:
        return self._k("usage", "")

    def usage(self, waba_id: str, month: str) -> str:
        return f"{self.usage_prefix}{waba_id}:{month}"

    def bucket(self, *scope: str) -> str:
        return self._k("b", *scope)

    @property
    def feed(self) -> str:
        return self._k("records")

    @property
    def months(self) -> str:
        return self._k("months")

    @property
    def phones(self) -> str:
        return self._k("phones")

    def pending(self, waba_id: str) -> str:
        return self._k("pending", waba_id)

    @property
    def pending_pattern(self) -> str:
        return self._k("pending", "*")

    @property
    def quarantine(self) -> str:
        return self._k("quarantine")

    @property
    def stats(self) -> str:
        return self._k("stats")

    @property
    def latency(self) -> str:
        return self._k("latency")

    @property
    def alerts(self) -> str:
        return self._k("alerts")

    @property
    def alerts_outbox(self) -> str:
        return self._k("alerts", "outbox")

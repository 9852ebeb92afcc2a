"""Every Redis key the processor uses, built in one place under one prefix.

Key                                    Type    Lifetime
{p}:inbox                              stream  webhook bodies; trimmed after ARCHIVE_RETENTION_DAYS
{p}:inbox:{n}                          stream  shard n > 0 of the inbox (INBOX_SHARDS)
{p}:inbox:shards                       string  the largest INBOX_SHARDS ever used
{p}:inbox:lease:{n}                    string  which drain job drains shard n (seconds)
{p}:drain:ticket                       string  "a drain job is queued" (seconds)
{p}:c:{digest}                         string  claim of an applied event (DEDUP_TTL_DAYS)
{p}:pair:{phone_number_id}:{user_id}   hash    window history of a pair (PAIR_HORIZON_DAYS idle);
                                               a group's: user_id "group:{group_id}"
{p}:rec:{waba_id}:{month}              hash    record_id -> latest record (RECORDS_RETENTION_DAYS)
{p}:usage:{waba_id}:{month}            hash    usage line -> unit count (RECORDS_RETENTION_DAYS)
{p}:b:{scope}:...:{month}              zset    ordered units of an allowance / tier bucket
                                               (members "wamid|waba_id|month|record_id",
                                               a group delivery's "wamid|participant|..."),
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
{p}:sink:{name}:lease                  string  which process delivers for a sink (seconds)
{p}:sink:{name}:parked                 stream  record versions a sink's target rejected for good
{p}:sink:{name}:replay                 stream  parked versions queued for another attempt
{p}:sink:{name}:sent:{month}           hash    record_id -> what a delta sink sent (retention)
{p}:sink:{name}:state                  hash    a sink's last error, backoff, holder
{p}:sink:stats                         hash    "{name}:delivered|failed|parked" counters
{p}:display_numbers                    hash    phone_number_id -> display number (webhook metadata)
{p}:tiers:{waba_id}                    hash    Meta's tier webhooks (account_update), by occurrence
{p}:templates                          hash    template id -> registry entry with category history
{p}:recon:{waba_id}:{month}            string  the last reconciliation result (JSON)
{p}:recon:summary                      hash    waba_id -> summary of its last reconciliation
{p}:recon:lock                         string  "a periodic reconciliation is due/queued" (TTL)
{p}:lastdrain                          string  JSON summary of the last drain job (DRAIN_RESULT_TTL)
{p}:failures:reconcile                 string  "quarantine and failed jobs were matched" (s)
{p}:alerts:lock:{alert_id}             string  one courier delivering an alert (seconds)
{p}:budgets                            hash    waba_id -> budget JSON set by PUT /v1/budgets
{p}:daily:{waba_id}:{month}            hash    "day|phone|d|usage line" -> unit count, for the
                                               dashboard (days in the WABA's zone; d = 1 when the
                                               record has a discrepancy)

{p}:tags                               set     the hash tags that hold ledger state (cluster)
{p}:{tag}:...                          ...     on a cluster (LEDGER_REDIS_CLUSTER): every ledger key
                                               above (pair, claims, records, usage, buckets,
                                               pending, the records feed, months) carries the
                                               hash tag of its WABA's portfolio, and the feed
                                               and months index are one per tag.

Cluster layout. An apply call touches one pair, its claims, the records and usage of the
months its units land in, the units' buckets (a portfolio's volume tiers; a WABA's or a phone
number's allowance) and the WABA's pending list. A phone number belongs to one WABA, a WABA to
one portfolio: tagging every such key with the portfolio (``tag``) puts all of them in one
slot. The tag comes from ``portfolios`` (waba_id -> portfolio_id, from wabas.csv; an unlisted
WABA is its own portfolio). Standalone (the default) keys carry no tag: names unchanged.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from processor.core.events import Pair

GROUP = "billing"  # the consumer group of the inbox stream


@dataclass(frozen=True)
class Keys:
    prefix: str = "wab"
    cluster: bool = False
    portfolios: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def tag(self, waba_id: str) -> str:
        """The hash tag of a WABA's ledger state: ``{portfolio}`` on a cluster, else ""."""
        if not self.cluster:
            return ""
        return self.portfolio_tag(self.portfolios.get(waba_id, waba_id))

    def portfolio_tag(self, portfolio: str) -> str:
        """The hash tag of a portfolio's ledger state ("" standalone)."""
        if not self.cluster:
            return ""
        if "{" in portfolio or "}" in portfolio or not portfolio:
            digest = hashlib.blake2b(portfolio.encode(), digest_size=8).hexdigest()
            portfolio = f"h-{digest}"
        return "{" + portfolio + "}"

    def _t(self, tag: str, *parts: str) -> str:
        return self._k(tag, *parts) if tag else self._k(*parts)

    @property
    def inbox(self) -> str:
        return self._k("inbox")

    def inbox_shard(self, shard: int) -> str:
        """Shard 0 is the inbox itself (its name unchanged); shard n > 0 is ``inbox:n``."""
        return self._k("inbox", str(shard)) if shard else self.inbox

    @property
    def inbox_shards(self) -> str:
        return self._k("inbox", "shards")

    def inbox_lease(self, shard: int) -> str:
        return self._k("inbox", "lease", str(shard))

    @property
    def drain_ticket(self) -> str:
        return self._k("drain", "ticket")

    def claim(self, claim_id: str, waba_id: str = "") -> str:
        digest = hashlib.blake2b(claim_id.encode(), digest_size=12).digest()
        return self._t(self.tag(waba_id), "c", base64.urlsafe_b64encode(digest).decode())

    def pair(self, pair: Pair) -> str:
        return self._t(self.tag(pair.waba_id), "pair", pair.phone_number_id, pair.user_id)

    @property
    def records_prefix(self) -> str:
        """Standalone only (on a cluster the records keys carry a tag)."""
        return self._k("rec", "")

    def records(self, waba_id: str, month: str) -> str:
        return self._t(self.tag(waba_id), "rec", waba_id, month)

    @property
    def usage_prefix(self) -> str:
        """Standalone only (on a cluster the usage keys carry a tag)."""
        return self._k("usage", "")

    def usage(self, waba_id: str, month: str) -> str:
        return self._t(self.tag(waba_id), "usage", waba_id, month)

    def bucket(self, *scope: str, waba_id: str = "", portfolio: str | None = None) -> str:
        """A bucket of ``waba_id``'s portfolio, or of ``portfolio`` (its tag)."""
        tag = self.tag(waba_id) if portfolio is None else self.portfolio_tag(portfolio)
        return self._t(tag, "b", *scope)

    def shared_bucket(self, bucket: str) -> bool:
        """A volume-tier bucket: its members may be units of any WABA of the portfolio."""
        return ":b:volume_tier:" in bucket

    def bounds(self, bucket: str) -> str:
        """The bounds of a bucket's members' tables, beside it (same tag)."""
        return bucket + ":t"

    @property
    def feed(self) -> str:
        """The records feed of a standalone ledger (``feed_of(tag)`` on a cluster)."""
        return self._k("records")

    def feed_of(self, tag: str) -> str:
        return self._t(tag, "records")

    @property
    def months(self) -> str:
        return self._k("months")

    def months_of(self, tag: str) -> str:
        return self._t(tag, "months")

    @property
    def tags(self) -> str:
        """The registry of hash tags that hold ledger state (a cluster's tags; outside any
        tag, written before the first apply call of a tag)."""
        return self._k("tags")

    @property
    def phones(self) -> str:
        return self._k("phones")

    def pending(self, waba_id: str) -> str:
        return self._t(self.tag(waba_id), "pending", waba_id)

    @property
    def pending_pattern(self) -> str:
        return self._k("pending", "*")

    @property
    def pending_pattern_cluster(self) -> str:
        """The pending lists of every tag (SCAN MATCH pattern)."""
        return self._k("{*}", "pending", "*")

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

    # -- sinks (processor/sinks/) ---------------------------------------------------------------

    def sink_lease(self, name: str) -> str:
        return self._k("sink", name, "lease")

    def sink_parked(self, name: str) -> str:
        return self._k("sink", name, "parked")

    def sink_replay(self, name: str) -> str:
        return self._k("sink", name, "replay")

    def sink_sent(self, name: str, month: str) -> str:
        return self._k("sink", name, "sent", month)

    def sink_state(self, name: str) -> str:
        return self._k("sink", name, "state")

    @property
    def sink_stats(self) -> str:
        return self._k("sink", "stats")

    @property
    def display_numbers(self) -> str:
        return self._k("display_numbers")

    def tier_updates(self, waba_id: str) -> str:
        return self._k("tiers", waba_id)

    @property
    def templates(self) -> str:
        return self._k("templates")

    def reconciliation(self, waba_id: str, month: str) -> str:
        return self._k("recon", waba_id, month)

    @property
    def reconciliation_summary(self) -> str:
        return self._k("recon", "summary")

    @property
    def reconciliation_lock(self) -> str:
        return self._k("recon", "lock")

    @property
    def drain_last(self) -> str:
        return self._k("lastdrain")

    @property
    def failures_reconcile(self) -> str:
        return self._k("failures", "reconcile")

    def alert_lock(self, alert_id: str) -> str:
        return self._k("alerts", "lock", alert_id)

    @property
    def budgets(self) -> str:
        return self._k("budgets")

    def usage_daily(self, waba_id: str, month: str) -> str:
        """The dashboard's breakdown of a month's usage (beside its usage counters)."""
        return self._t(self.tag(waba_id), "daily", waba_id, month)

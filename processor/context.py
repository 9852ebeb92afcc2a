"""The processor's parts, wired once per process from the settings (nothing at import time)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import redis
from redis import Redis
from rq import Queue

from processor.budget_files import load_budgets
from processor.config_files import load_ratebook
from processor.core.budget import Budget
from processor.core.rating import RateBook
from processor.settings import DAY, Settings
from processor.store.cluster import cluster_client
from processor.store.connection import Embedded, client, resolve_url
from processor.store.inbox import Inbox
from processor.store.keys import Keys
from processor.store.ledger import Ledger, LedgerConfig
from processor.store.quarantine import Quarantine
from processor.store.queries import Queries

DRAIN_JOB = "workers.drain.drain"


@dataclass
class Context:
    settings: Settings
    redis_url: str
    redis: redis.Redis
    keys: Keys
    embedded: Embedded | None = None
    _ratebook: RateBook | None = field(default=None, repr=False)

    @functools.cached_property
    def inbox(self) -> Inbox:
        return Inbox(self.redis, self.keys, self.settings.inbox_shards)

    @property
    def quarantine(self) -> Quarantine:
        return Quarantine(self.redis, self.keys)

    @property
    def queries(self) -> Queries:
        return Queries(self.ledger_redis, self.ledger_keys)

    @functools.cached_property
    def ledger_redis(self) -> Redis:
        """The billing state's Redis: LEDGER_REDIS_URL (a cluster's node with
        LEDGER_REDIS_CLUSTER), else the one of the inbox and RQ."""
        s = self.settings
        url = s.ledger_redis_url or self.redis_url
        if s.ledger_redis_cluster:
            return cluster_client(url, s.redis_timeout_seconds)
        if url != self.redis_url:
            return client(url, timeout=s.redis_timeout_seconds)
        return self.redis

    @functools.cached_property
    def ledger_keys(self) -> Keys:
        """The ledger's keys: on a cluster, tagged by each WABA's portfolio (wabas.csv)."""
        if not self.settings.ledger_redis_cluster:
            return self.keys
        portfolios = self.ratebook.portfolios()
        return Keys(self.settings.redis_prefix, cluster=True, portfolios=portfolios)

    @property
    def ratebook(self) -> RateBook:
        if self._ratebook is None:
            self._ratebook = load_ratebook(self.settings.config_dir)
        return self._ratebook

    @functools.cached_property
    def budget_file(self) -> dict[str, Budget]:
        """budgets.csv (optional): waba_id or ``*`` -> budget."""
        return load_budgets(self.settings.config_dir)

    @functools.cached_property
    def ledger(self) -> Ledger:
        s = self.settings
        config = LedgerConfig(
            dedup_ttl=s.dedup_ttl_seconds,
            pair_horizon=s.pair_horizon_seconds,
            records_retention=s.records_retention_seconds,
            feed_maxlen=s.records_feed_maxlen,
            wait_replicas=s.ledger_wait_replicas,
        )
        return Ledger(self.ledger_redis, self.ledger_keys, self.ratebook, config)

    @functools.cached_property
    def queue(self) -> Queue:
        # RQ stores pickled job data: it needs a client that does not decode responses.
        return Queue(self.settings.queue_name, connection=self.redis)

    def enqueue_drain(self) -> None:
        """Queue one drain job (jobs carry many bodies each; see workers/drain.py); its
        description says how many bodies wait, and it stays DRAIN_RESULT_TTL once finished."""
        from workers.jobs import queued_description

        backlog = self.inbox.backlog()
        self.queue.enqueue(
            DRAIN_JOB,
            job_timeout=max(60, int(self.settings.drain_max_seconds * 6)),
            result_ttl=self.settings.drain_result_ttl_seconds,
            failure_ttl=7 * DAY,
            description=queued_description(backlog),
            meta={"kind": "drain", "waiting": backlog["lag"]},
        )

    def close(self) -> None:
        if "ledger_redis" in self.__dict__ and self.ledger_redis is not self.redis:
            self.ledger_redis.close()
        self.redis.close()


def build_context(settings: Settings, *, with_ratebook: bool = True) -> Context:
    """Connect to Redis (starting the embedded one if need be) and load the rate book."""
    url, embedded = resolve_url(settings)
    ctx = Context(
        settings=settings,
        redis_url=url,
        redis=client(url, timeout=settings.redis_timeout_seconds),
        keys=Keys(settings.redis_prefix),
        embedded=embedded,
    )
    if with_ratebook:
        _ = ctx.ratebook  # fail at start-up, not at the first event
        _ = ctx.budget_file
    return ctx

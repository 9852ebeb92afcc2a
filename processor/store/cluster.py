"""Where the ledger's calls go: one standalone Redis, or the primaries of a Redis Cluster.

On a cluster (``LEDGER_REDIS_CLUSTER=true``) the ledger's state lives on redis-py's cluster
client. Apply calls are grouped by the primary that serves their slot (every key of a call
shares one hash tag, see keys.py) and each group goes in one pipeline on that node's own
connection, followed by ``WAIT`` when replicas are to hold the writes before the batch is
acknowledged. A call that meets a moved slot, a failover or a dropped connection is decided
and sent again: its claims make that safe (already applied = a duplicate).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    MovedError,
    ReadOnlyError,
    TryAgainError,
)

# Errors after which the same call, sent again later, may succeed (the store is moving).
TRANSIENT: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    ClusterError,
    TryAgainError,
    MovedError,
    AskError,
    ReadOnlyError,
    MasterDownError,
)


def cluster_client(url: str, timeout: float) -> redis.Redis:
    """redis-py's cluster client for a cluster one node of which ``url`` names.

    Typed as ``redis.Redis``: it answers the same commands for keys of one slot."""
    client = RedisCluster.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return cast(redis.Redis, client)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


class Router:
    """Groups calls by the node that serves their first key's slot."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.cluster = is_cluster(client)

    def groups(self, first_keys: list[str]) -> list[tuple[redis.Redis, list[int]]]:
        """(a client of one node, the indexes of the calls it serves)."""
        if not self.cluster:
            return [(self.client, list(range(len(first_keys))))]
        cluster = cast(RedisCluster, self.client)
        nodes: dict[str, Any] = {}
        members: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(first_keys):
            slot = cluster.keyslot(key)  # type: ignore[no-untyped-call]
            node = cluster.nodes_manager.get_node_from_slot(slot)
            nodes[node.name] = node
            members[node.name].append(i)
        return [(self._node_client(nodes[n]), members[n]) for n in members]

    def _node_client(self, node: Any) -> redis.Redis:
        cluster = cast(RedisCluster, self.client)
        found = cluster.get_redis_connection(node)
        if found is None:  # the slot map named a node not connected yet
            cluster.nodes_manager.initialize()
            found = cluster.get_redis_connection(node)
        return found

    def refresh(self) -> None:
        """Read the slot map again (after a failover or a moved slot)."""
        if self.cluster:
            cast(RedisCluster, self.client).nodes_manager.initialize()

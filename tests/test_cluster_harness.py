"""The local Redis Cluster the cluster tests run on forms, serves, and fails over for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.cluster import LocalCluster, wait_failover


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        yield local.start()
    finally:
        local.stop()


def test_cluster_has_three_primaries_and_three_replicas(cluster: LocalCluster) -> None:
    roles = sorted(node.role() for node in cluster.live())
    assert roles == ["master"] * 3 + ["slave"] * 3


def test_cluster_client_reaches_every_slot_owner(cluster: LocalCluster) -> None:
    client = RedisCluster.from_url(cluster.url)
    keys = [f"k{i}" for i in range(64)]
    for key in keys:
        client.set(key, key)
    assert [client.get(k) for k in keys] == [k.encode() for k in keys]
    owners = {cluster.primary_of(k).port for k in keys}
    assert len(owners) == 3  # 64 keys spread over the three primaries
    client.close()


def test_cluster_primary_killed_fails_over_and_keeps_acknowledged_writes(
    cluster: LocalCluster,
) -> None:
    client = RedisCluster.from_url(cluster.url)
    client.set("{tag}:a", "1")
    victim = cluster.primary_of("{tag}:a")
    assert victim.client().wait(1, 2000) == 1  # the replica has it before the primary dies
    victim.kill()
    wait_failover(cluster, victim)
    survivor = cluster.primary_of("{tag}:a")
    assert survivor.port != victim.port and survivor.role() == "master"
    assert client.get("{tag}:a") == b"1"  # the same client follows the new primary
    fresh = RedisCluster.from_url(f"redis://{survivor.address}/0")
    assert fresh.get("{tag}:a") == b"1"
    with pytest.raises(redis.ConnectionError):
        victim.client().ping()
    fresh.close()
    client.close()

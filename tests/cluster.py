"""A real Redis Cluster for tests: 3 primaries and 3 replicas on free loopback ports.

``redis-server --cluster-enabled yes`` per node, then ``redis-cli --cluster create``; every node
in its own directory under ``root``, stopped and removed by :meth:`LocalCluster.stop`. The
ledger-on-a-cluster tests (issue 13) and the failover test build on it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import redis

from bench.cluster import Node as BenchNode
from tests.fault_helpers import free_port, wait_for
from tests.needs import need

REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


@dataclass
class Node(BenchNode):
    """The benchmark's node (bench/cluster.py), with what failover tests need: an AOF, a short
    node timeout, and a way to kill it."""

    NODE_TIMEOUT_MS: ClassVar[int] = 1000
    APPENDONLY: ClassVar[str] = "yes"
    SOCKET_TIMEOUT: ClassVar[float] = 2

    def start(self) -> None:
        super().start()
        wait_for(self.answers, 10, f"redis node on {self.port}")

    def kill(self) -> None:
        """SIGKILL: the node dies as a crashed machine would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def role(self) -> str:
        return str(self.client().info("replication")["role"])


@dataclass
class LocalCluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node (the cluster client discovers the others)."""
        return f"redis://{self.nodes[0].address}/0"

    def start(self, primaries: int = 3, replicas_each: int = 1) -> LocalCluster:
        tools = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None
        need(tools, "redis-server and redis-cli (Debian package redis-server) for a cluster")
        count = primaries * (1 + replicas_each)
        self.nodes = [Node(free_port(), free_port(), self.root / f"n{i}") for i in range(count)]
        for node in self.nodes:
            node.start()
        create = [REDIS_CLI, "--cluster", "create", *(n.address for n in self.nodes)]
        create += ["--cluster-replicas", str(replicas_each), "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        wait_for(self.healthy, 30, "cluster state ok on every node")
        return self

    def healthy(self) -> bool:
        """Every live node sees the cluster as ok and all 16384 slots served."""
        for node in self.live():
            try:
                info = node.client().cluster("info")
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok" or int(info["cluster_slots_ok"]) != 16384:
                return False
        return True

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def primary_of(self, key: str) -> Node:
        """The live node that is primary for ``key``'s slot now (as a live node sees it)."""
        client = self.live()[0].client()
        slot = int(client.cluster("keyslot", key))
        for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no primary serves slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_failover(cluster: LocalCluster, dead: Node, timeout: float = 30) -> None:
    """After ``dead`` (a primary) was killed: wait until a replica serves its slots and every
    live node sees the cluster as ok."""

    def promoted() -> bool:
        try:
            slots = cluster.live()[0].client().execute_command("CLUSTER", "SLOTS")
        except redis.RedisError:
            return False
        return all(int(entry[2][1]) != dead.port for entry in slots) and cluster.healthy()

    wait_for(promoted, timeout, "cluster failover")


def replicas_online(cluster: LocalCluster) -> bool:
    """Every primary's replica has finished its first sync (only then can it take over;
    diskless sync waits 5 s before it starts)."""
    for node in cluster.live():
        info = node.client().info("replication")
        if info["role"] == "master" and info.get("slave0", {}).get("state") != "online":
            return False
    return True

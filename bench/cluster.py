"""A local Redis Cluster for the ``cluster`` section: the ledger on it, RQ and the inbox not.

``redis-server --cluster-enabled yes`` per node on free loopback ports, then ``redis-cli
--cluster create`` (as ``tests/cluster.py`` does, copied here so that the benchmark does not
import the tests). Nodes persist nothing (no AOF, no RDB), like the benchmark's single Redis;
every node lives in its own directory under the benchmark's scratch directory and
:func:`started` stops them all and removes it, also on a failure or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import redis

from bench.env import stop, wait_for
from processor.context import Context

TOOLS = ("redis-server", "redis-cli")
PRIMARIES = 3


def missing_tools() -> list[str]:
    """The programs a cluster needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    """One ``redis-server --cluster-enabled yes`` on loopback (tests/cluster.py extends it)."""

    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    # The benchmark's nodes persist nothing and give failover time; the tests' differ.
    NODE_TIMEOUT_MS: ClassVar[int] = 5000
    APPENDONLY: ClassVar[str] = "no"
    SOCKET_TIMEOUT: ClassVar[float] = 5

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=self.SOCKET_TIMEOUT)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            str(shutil.which("redis-server")),
            "--port", str(self.port),
            "--cluster-port", str(self.bus_port),
            "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS),
            "--appendonly", self.APPENDONLY,
            "--save", "",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False


@dataclass
class Cluster:
    root: Path
    replicas: int = 0  # per primary
    nodes: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node (the cluster client discovers the others)."""
        return f"redis://{self.nodes[0].address}/0"

    @property
    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.process is not None]

    @property
    def label(self) -> str:
        """How the ledger was held, for the rows."""
        if not self.replicas:
            return f"{PRIMARIES}-primary cluster, no replicas"
        return f"{PRIMARIES}-primary cluster, {self.replicas} replica each, WAIT {self.replicas}"

    def env(self) -> dict[str, str]:
        """The processor's settings that put the ledger on this cluster."""
        return {
            "LEDGER_REDIS_URL": self.url,
            "LEDGER_REDIS_CLUSTER": "true",
            "LEDGER_WAIT_REPLICAS": str(self.replicas),
        }

    def start(self) -> None:
        count = PRIMARIES * (1 + self.replicas)
        self.nodes = [Node(_free_port(), _free_port(), self.root / f"n{i}") for i in range(count)]
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            wait_for(node.answers, 20, f"redis-server on port {node.port}")
        create = ["redis-cli", "--cluster", "create", *(n.address for n in self.nodes)]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-500:]!r}")
        wait_for(self.healthy, 60, "the cluster's state to be ok on every node", every=0.2)

    def healthy(self) -> bool:
        """Every node sees the cluster as ok, all 16384 slots served (and replicas synced)."""
        for node in self.nodes:
            try:
                with node.client() as client:
                    info = client.cluster("info")
                    replication = client.info("replication")
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok" or int(info["cluster_slots_ok"]) != 16384:
                return False
            if replication["role"] == "master" and self.replicas:
                states = [replication.get(f"slave{i}", {}) for i in range(self.replicas)]
                if any(s.get("state") != "online" for s in states):
                    return False
        return True

    def flush(self) -> None:
        """Empty every primary (replicas follow)."""
        for node in self.nodes:
            with node.client() as client:
                if client.info("replication")["role"] == "master":
                    client.flushall()

    def stop(self) -> None:
        procs = [n.process for n in self.nodes if n.process is not None]
        stop(procs, timeout=10)  # SIGTERM (nothing to save), then SIGKILL
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def started(root: Path, replicas: int = 0) -> Iterator[Cluster]:
    """A running cluster, stopped and removed on the way out (whatever the way out is)."""
    cluster = Cluster(root, replicas)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def spread(ctx: Context) -> tuple[int, int]:
    """(portfolios, primaries serving them): the ledger's hash tags after a run, and how many
    distinct primaries their slots fall on (traffic of few portfolios uses few primaries)."""
    client: Any = ctx.ledger_redis
    tags = ctx.queries.tags()
    nodes = set()
    for tag in tags:
        slot = client.keyslot(ctx.ledger_keys.months_of(tag))
        nodes.add(client.nodes_manager.get_node_from_slot(slot).name)
    return len(tags), len(nodes)

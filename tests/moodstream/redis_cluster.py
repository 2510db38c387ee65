"""A real Redis Cluster for tests: N valkey-server nodes (the embedded default's binary,
moodstream.embedded.redis_binary) on free loopback ports, slots assigned by the test.

    with LocalRedisCluster(3) as cluster:
        client = redis.cluster.RedisCluster.from_url(...)  # or cluster.url for REDIS_URL

Each node gets its own cluster-bus port (--cluster-port, also free) instead of the
default port + 10000, which a high free port would push past 65535.
"""

from __future__ import annotations

import time

import redis

from moodstream.embedded import EmbeddedRedis, EmbeddedServerError, free_port

SLOTS = 16384


class ClusterNodeServer(EmbeddedRedis):
    """One cluster-enabled node; its nodes.conf lives in its work dir."""

    name = "valkey-cluster-node"

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host)
        self.bus_port = free_port(host)

    def command(self) -> list[str]:
        return [*super().command(), "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port),
                "--cluster-node-timeout", "5000"]

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, decode_responses=True)


def slot_ranges(nodes: int) -> list[tuple[int, int]]:
    """0..16383 cut into `nodes` contiguous ranges (first, last), as even as possible."""
    bounds = [SLOTS * i // nodes for i in range(nodes + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(nodes)]


class LocalRedisCluster:
    """Primaries only (no replicas): enough to prove every command lands in one slot."""

    def __init__(self, nodes: int = 3, host: str = "127.0.0.1"):
        self.nodes = [ClusterNodeServer(host) for _ in range(nodes)]

    @property
    def url(self) -> str:
        """The REDIS_URL that moodstream.clients.redis_client turns into a RedisCluster."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 30.0) -> "LocalRedisCluster":
        try:
            for node in self.nodes:
                node.start()
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, timeout: float) -> None:
        clients = [node.client() for node in self.nodes]
        try:
            for client, (first, last) in zip(clients, slot_ranges(len(self.nodes))):
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            head = self.nodes[0]
            for client in clients[1:]:
                client.execute_command("CLUSTER MEET", head.host, head.port, head.bus_port)
            self._wait_ok(clients, timeout)
        finally:
            for client in clients:
                client.close()

    def _wait_ok(self, clients: list[redis.Redis], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            infos = [client.cluster("INFO") for client in clients]
            if all(info.get("cluster_state") == "ok"
                   and int(info.get("cluster_known_nodes", 0)) == len(clients) for info in infos):
                return
            if time.monotonic() >= deadline:
                raise EmbeddedServerError(f"cluster not ok within {timeout:.0f}s: {infos}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> "LocalRedisCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""Redis topologies for the replica, hedging and cluster tests: a primary with ``--replicaof`` replicas, and
a Redis Cluster (``--cluster-enabled yes`` nodes joined by ``redis-cli --cluster create``), all real
processes on free loopback ports (``tests.servers.RedisServer``), so tests can stall (``CLIENT PAUSE``,
``DEBUG SLEEP``, SIGSTOP) and kill (``SHUTDOWN NOSAVE``) any one of them."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from tests.servers import RedisServer, ServerStartError, free_port


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)


def wait_until(condition: object, timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is truthy (exceptions count as not yet); fail after ``timeout``."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception as exc:  # the server may be mid-restart: keep polling
            last = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last!r})")


def kill(server: RedisServer) -> None:
    """``SHUTDOWN NOSAVE``: the server exits at once and loses its data, as a crash would."""
    with contextlib.suppress(redis.RedisError), _client(server) as client:
        client.shutdown(nosave=True)
    if server.proc is not None:
        server.proc.wait(timeout=10)
        server.proc = None


def client_pause(server: RedisServer, milliseconds: int) -> None:
    """``CLIENT PAUSE <ms> ALL``: the server accepts connections and commands but answers none for a while."""
    with _client(server) as client:
        client.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")


def debug_sleep(server: RedisServer, seconds: float) -> None:
    """``DEBUG SLEEP``: the server's only thread sleeps (sent without waiting for the reply)."""
    with _client(server) as client:
        connection = client.connection_pool.get_connection()
        connection.send_command("DEBUG", "SLEEP", seconds)
        connection.disconnect()  # the command is on the wire; the server sleeps anyway


@dataclass
class ReplicaSet:
    """A primary and its replicas (``--replicaof``), replication established."""

    primary: RedisServer
    replicas: list[RedisServer]

    @property
    def replica_urls(self) -> list[str]:
        return [r.url for r in self.replicas]


def _wait_linked(replica: RedisServer) -> None:
    def linked() -> bool:
        with _client(replica) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    wait_until(linked)


@contextlib.contextmanager
def replica_set(replicas: int = 1) -> Iterator[ReplicaSet]:
    """A throwaway primary with ``replicas`` replicas of it."""
    primary = RedisServer(extra=["--repl-diskless-sync-delay", "0"])
    started: list[RedisServer] = []
    try:
        primary.start()
        started.append(primary)
        followers = []
        for _ in range(replicas):
            replica = RedisServer(extra=["--replicaof", "127.0.0.1", str(primary.port)])
            replica.start()
            started.append(replica)
            followers.append(replica)
        for replica in followers:
            _wait_linked(replica)
        yield ReplicaSet(primary, followers)
    finally:
        for server in started:
            server.destroy()


@dataclass
class Cluster:
    """A Redis Cluster: ``nodes`` (primaries first as created; roles change on failover)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None]

    def primary_for(self, key: str) -> RedisServer:
        """The node currently serving ``key``'s slot as primary."""
        for node in self.live():
            with contextlib.suppress(redis.RedisError), _client(node) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no live node serves {key!r}")

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and no node is marked failed."""
        for node in self.live():
            with _client(node) as client:
                info = client.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                return False
        return True


@contextlib.contextmanager
def redis_cluster(shards: int = 3, replicas: int = 1) -> Iterator[Cluster]:
    """A throwaway cluster: ``shards`` primaries, ``replicas`` replicas each, fast failover timeouts."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ServerStartError("redis-cli not found: apt-get install -y redis-tools")
    nodes: list[RedisServer] = []
    try:
        for _ in range(shards * (1 + replicas)):
            node = RedisServer(
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                ]
            )
            # The bus port defaults to port + 10000, which may be taken or out of range: pick a free one.
            node.extra += ["--cluster-config-file", str(node.workdir / "nodes.conf")]
            node.extra += ["--cluster-port", str(free_port())]
            node.start()
            nodes.append(node)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster = Cluster(nodes)
        wait_until(cluster.healthy, timeout=30)
        yield cluster
    finally:
        for node in nodes:
            node.destroy()

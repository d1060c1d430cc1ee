"""Real ``flagd serve`` nodes on a Redis primary + read replica (``FLAGD_REDIS_REPLICA_URLS``) and on a Redis
Cluster (``redis+cluster://``), with the real ``posthog`` SDK: events captured on one node are seen by flag
checks on another at once, and checks keep answering while a replica or a cluster shard dies."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from posthog import Posthog

from tests.e2e.conftest import FlagdServer, distributed_env, wait_until
from tests.e2e.test_persons import _flag, _setup
from tests.redis_topology import Cluster, ReplicaSet, kill, redis_cluster, replica_set

pytestmark = pytest.mark.e2e


@pytest.fixture
def pair() -> Iterator[ReplicaSet]:
    """A throwaway primary with one replica."""
    with replica_set(1) as servers:
        yield servers


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A throwaway 3-shard Redis Cluster, one replica per shard."""
    with redis_cluster(3, 1) as c:
        yield c


def _nodes(start: Callable[..., FlagdServer], env: dict[str, str]) -> tuple[FlagdServer, FlagdServer]:
    # These tests check answers, not timing: on this shared machine a cold connection can take longer than
    # the 25 ms default deadline (tests/flagd/test_store_faults.py checks the deadline itself), and at this
    # trickle of sequential requests one slow write (the WAIT that finds the replica gone) is the only
    # sample of its 100 ms interval, which the load shedder reads as overload: shedding is tested elsewhere.
    env = {**env, "FLAGD_STORE_DEADLINE_MS": "1000", "FLAGD_SHED_TARGET_DELAY": "0"}
    a = start(env=env)
    b = start(env={**env, "FLAGD_SYNCER": "0"})
    _setup(a)
    wait_until(lambda: "pro-feature" in b.flags("probe")["flags"], timeout=20)
    return a, b


def _round_trips(a: FlagdServer, b: FlagdServer, rounds: int) -> None:
    """Capture on A (sync mode: returns once /batch/ answered), then ask B: B sees it every time."""
    writer = Posthog(a.project_token, host=a.url, sync_mode=True, disable_geoip=True)
    reader = Posthog(b.project_token, host=b.url, disable_geoip=True, feature_flags_request_timeout_seconds=5)
    try:
        for _ in range(rounds):
            user = f"user-{uuid.uuid4().hex[:8]}"
            writer.capture("clicked_buy", distinct_id=user)
            writer.capture("clicked_buy", distinct_id=user)
            writer.capture("x", distinct_id=user, properties={"$set": {"plan": "pro"}})
            assert _flag(reader, "buyers", user) is True
            assert _flag(reader, "pro-feature", user) is True
    finally:
        writer.shutdown()
        reader.shutdown()


def test_with_a_read_replica_every_node_reads_its_writes_and_survives_losing_the_replica(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, pair: ReplicaSet
) -> None:
    """Two nodes on a primary + replica: 15 capture-then-check round trips across nodes all see the events;
    with the replica shut down, checks still answer 200 and right (the primary serves the reads)."""
    env = {
        **distributed_env(tmp_path, database_url, pair.primary.url),
        "FLAGD_REDIS_REPLICA_URLS": ",".join(pair.replica_urls),
    }
    a, b = _nodes(start_flagd, env)
    _round_trips(a, b, 15)
    kill(pair.replicas[0])
    _round_trips(a, b, 5)
    metrics = httpx.get(f"{b.url}/metrics", timeout=10).text
    assert 'flagd_store_reads_total{store="127.0.0.1:' in metrics


def test_on_a_redis_cluster_nodes_serve_and_survive_a_shard_failover(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path, database_url: str, cluster: Cluster
) -> None:
    """Two nodes on ``redis+cluster://``: flags created on A reach B, captured behaviour is seen across
    nodes; after the shard holding the probed person loses its primary, checks answer 200 throughout
    and right again once its replica took over."""
    env = distributed_env(tmp_path, database_url, cluster.url)
    a, b = _nodes(start_flagd, env)
    _round_trips(a, b, 5)
    victim = cluster.primary_for(f"flagd:P{{p{a.project_id}:probe}}")  # the shard holding the probe person
    kill(victim)
    statuses: list[int] = []

    def recovered() -> bool:
        response = httpx.post(
            f"{b.url}/flags/?v=2", json={"api_key": b.project_token, "distinct_id": "probe"}, timeout=10
        )
        statuses.append(response.status_code)
        return not response.json()["errorsWhileComputingFlags"]

    wait_until(lambda: cluster.healthy() and recovered(), timeout=30, interval=0.1)
    assert set(statuses) == {200}
    _round_trips(a, b, 5)

"""Prometheus metrics: what the SDK path records, and aggregation across worker processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flagd.metrics import LATENCY_BUCKETS, Metrics


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_request_latency_and_status_are_recorded_per_route() -> None:
    """Observed requests show up in the histogram (with sub-millisecond buckets) and the status counter."""
    metrics = Metrics()
    flags = metrics.route("flags")
    metrics.observe(flags, 200, 0.00012)
    metrics.observe(flags, 200, 0.0009)
    metrics.observe(flags, 401, 0.00004)
    samples = _samples(metrics.render())
    assert samples[("flagd_requests_total", (("route", "flags"), ("status", "200")))] == 2
    assert samples[("flagd_requests_total", (("route", "flags"), ("status", "401")))] == 1
    assert samples[("flagd_request_duration_seconds_count", (("route", "flags"),))] == 3
    assert samples[("flagd_request_duration_seconds_bucket", (("le", "5e-05"), ("route", "flags")))] == 1
    assert samples[("flagd_request_duration_seconds_bucket", (("le", "0.00015"), ("route", "flags")))] == 2
    assert samples[("flagd_request_duration_seconds_bucket", (("le", "0.001"), ("route", "flags")))] == 3
    assert LATENCY_BUCKETS[0] == 0.00005
    assert LATENCY_BUCKETS[-1] == 5.0


def test_evaluations_are_counted_by_reason_and_sheds_by_route() -> None:
    """Per-request reason tallies add up; sheds and store errors have their own counters."""
    metrics = Metrics()
    metrics.tally_reasons(["condition_match"] * 3 + ["flag_disabled"])
    metrics.tally_reasons(["condition_match"] * 2)
    metrics.count_shed("flags")
    metrics.store_error("redis_read")
    samples = _samples(metrics.render())
    assert samples[("flagd_flag_evaluations_total", (("reason", "condition_match"),))] == 5
    assert samples[("flagd_flag_evaluations_total", (("reason", "flag_disabled"),))] == 1
    assert samples[("flagd_shed_total", (("route", "flags"),))] == 1
    assert samples[("flagd_store_errors_total", (("operation", "redis_read"),))] == 1


def test_snapshot_gauges_come_from_health() -> None:
    """Rendering with a health dict publishes the snapshot version and propagation lag."""
    metrics = Metrics()
    samples = _samples(metrics.render({"ready": True, "version": 42, "lag": 0.125}))
    assert samples[("flagd_snapshot_version", ())] == 42
    assert samples[("flagd_snapshot_lag_seconds", ())] == 0.125


def test_staleness_is_published_and_cleared() -> None:
    """A node serving a snapshot it cannot keep current says so in flagd_snapshot_stale (1), and 0 after."""
    metrics = Metrics()
    assert _samples(metrics.render({"ready": True, "stale": True}))[("flagd_snapshot_stale", ())] == 1
    assert _samples(metrics.render({"ready": True, "stale": False}))[("flagd_snapshot_stale", ())] == 0


def test_two_instances_do_not_share_series() -> None:
    """Each Metrics has its own registry, so building one per app (or per test) never collides."""
    first, second = Metrics(), Metrics()
    first.observe(first.route("flags"), 200, 0.001)
    samples = _samples(second.render())
    assert ("flagd_requests_total", (("route", "flags"), ("status", "200"))) not in samples


_WORKER = textwrap.dedent(
    """
    import sys
    from flagd.metrics import Metrics, prepare_multiprocess
    if sys.argv[2] == "prepare":
        prepare_multiprocess(sys.argv[1])
    m = Metrics()
    m.observe(m.route("flags"), 200, 0.0002)
    m.flush()
    m.count_evaluations({"condition_match": 5})
    """
)


def test_multiprocess_mode_aggregates_every_worker(tmp_path: Path) -> None:
    """Two worker processes writing to the shared directory are summed by any process rendering /metrics."""
    shared = tmp_path / "prom"
    (shared).mkdir()
    (shared / "stale_junk.db").write_bytes(b"")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The first one prepares the directory (clearing stale files), the second inherits it through the env.
    subprocess.run([sys.executable, "-c", _WORKER, str(shared), "prepare"], check=True, env=env, timeout=30)
    assert not (shared / "stale_junk.db").exists()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    subprocess.run([sys.executable, "-c", _WORKER, str(shared), "inherit"], check=True, env=env, timeout=30)
    samples = _samples(Metrics(multiprocess_dir=str(shared)).render())
    assert samples[("flagd_requests_total", (("route", "flags"), ("status", "200")))] == 2
    assert samples[("flagd_flag_evaluations_total", (("reason", "condition_match"),))] == 10


def test_observations_are_batched_and_flushed_by_count_and_on_render() -> None:
    """Tallies reach Prometheus after flush_every requests, and always when rendering."""
    metrics = Metrics(flush_every=3)
    route = metrics.route("flags")
    key = ("flagd_requests_total", (("route", "flags"), ("status", "200")))
    metrics.observe(route, 200, 0.001)
    metrics.observe(route, 200, 0.001)
    assert _samples(generate_latest(metrics.registry)).get(key) is None
    metrics.observe(route, 200, 0.001)  # third request: count-based flush
    assert _samples(generate_latest(metrics.registry))[key] == 3
    metrics.observe(route, 200, 0.001)
    assert _samples(metrics.render())[key] == 4  # render flushes first


async def test_an_idle_worker_publishes_within_flush_seconds() -> None:
    """On an event loop, a lone request reaches Prometheus by itself after flush_seconds, with no traffic."""
    metrics = Metrics(flush_seconds=0.01)
    route = metrics.route("flags")
    key = ("flagd_requests_total", (("route", "flags"), ("status", "200")))
    metrics.observe(route, 200, 0.001)
    assert _samples(generate_latest(metrics.registry)).get(key) is None
    for _ in range(500):  # no traffic, no render: only the timer can publish it
        if _samples(generate_latest(metrics.registry)).get(key) is not None:
            break
        await asyncio.sleep(0.01)
    assert _samples(generate_latest(metrics.registry))[key] == 1

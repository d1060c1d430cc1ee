"""deploy/ against a live server: every metric a dashboard query or an alert names is on /metrics."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.monitoring import SYNTHETIC, alert_rules, dashboard_queries, metric_names
from tests.e2e.conftest import FlagdServer

pytestmark = pytest.mark.e2e
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exposed_series(text: str) -> set[str]:
    """Every series name a Prometheus scrape of ``text`` can yield (declared families and their samples)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_dashboard_and_alerts_name_is_exposed(
    start_flagd: Callable[..., FlagdServer],
) -> None:
    """A live flagd's /metrics declares every series deploy/grafana and deploy/prometheus query."""
    server = start_flagd()
    server.flags("u1")
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200
    exposed = exposed_series(response.text)
    named: set[str] = set()
    for expression in [rule["expr"] for rule in alert_rules()] + dashboard_queries():
        named |= metric_names(expression)
    assert named - SYNTHETIC, "no metric names found in deploy/"
    missing = sorted(named - SYNTHETIC - exposed)
    assert not missing, f"named in deploy/ but not on /metrics: {missing}"
    for store_series in (
        "flagd_store_reads_total",
        "flagd_store_hedges_total",
        "flagd_store_deadline_misses_total",
        "flagd_store_breaker_state",
    ):
        assert store_series in exposed

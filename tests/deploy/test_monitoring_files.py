"""deploy/ and docs/runbooks.md: alerts with runbooks, a dashboard that imports as is, the compose profile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.monitoring import (
    ALERTS,
    COMPOSE,
    ROOT,
    SCRAPE,
    alert_rules,
    dashboard,
    dashboard_queries,
    metric_names,
    runbook_sections,
)

PROMTOOL_HINT = "promtool not installed (Debian: apt-get install -y prometheus)"
REQUIRED_ALERTS = {
    "FlagdLatencyP99OverSLO",
    "FlagdErrorRatioHigh",
    "FlagdSheddingSustained",
    "FlagdPropagationLagHigh",
    "FlagdStoreUnreachable",
    "FlagdSnapshotStale",
}


def test_the_alerts_the_issue_asks_for_are_all_there() -> None:
    """p99 over SLO, error ratio, sustained shedding, propagation lag, store unreachable, stale snapshot."""
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


def test_every_alert_links_a_runbook_section_that_explains_it() -> None:
    """Each alert's runbook_url names a docs/runbooks.md section saying meaning, confirmation and action."""
    sections = runbook_sections()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md", url
        assert anchor == rule["alert"].lower(), url
        text = sections[anchor]
        for part in ("**Meaning.**", "**Confirm.**", "**Do.**"):
            assert part in text, f"{anchor}: no {part}"
        assert rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in {"page", "ticket"}


def test_metric_names_are_read_from_queries() -> None:
    """The name extraction the exposure test relies on finds selectors, bare names and nothing in strings."""
    names = metric_names(
        "histogram_quantile(0.99, sum by (le) ("
        'rate(flagd_request_duration_seconds_bucket{route=~"a|b"}[5m])))'
        " / max(flagd_snapshot_version) and up == 0"
    )
    assert names == {"flagd_request_duration_seconds_bucket", "flagd_snapshot_version"}
    assert metric_names('up{job="flagd"} == 0') == {"up"}


def test_dashboard_imports_as_is() -> None:
    """The dashboard needs no import-time inputs: every query uses the ${datasource} variable it declares."""
    board = dashboard()
    assert "__inputs" not in board
    assert board["uid"] == "flagd-overview"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    queries = " ".join(dashboard_queries())
    for needed in ("flagd_request_duration_seconds_bucket", "flagd_shed_total", "flagd_snapshot_lag_seconds"):
        assert needed in queries
    assert "histogram_quantile(0.99" in queries
    assert "flagd_store_hedges_total" in queries


def test_compose_monitoring_profile_mounts_the_provisioned_files() -> None:
    """`docker compose --profile monitoring` runs Prometheus and Grafana on the files in deploy/."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    for name in ("flagd-1", "flagd-2", "postgres", "redis"):
        assert "profiles" not in services[name]  # the default stack is unchanged
    scrape = yaml.safe_load(SCRAPE.read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["flagd-1:8000", "flagd-2:8000"]
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/flagd.yml").read_text())
    assert provider["providers"][0]["options"]["path"] in mounted


@pytest.mark.skipif(shutil.which("promtool") is None, reason=PROMTOOL_HINT)
def test_promtool_accepts_the_alert_rules() -> None:
    """`promtool check rules` passes on deploy/prometheus/alerts.yml."""
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason=PROMTOOL_HINT)
def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    """`promtool check config` passes on the compose Prometheus config (rules path set to the repo file)."""
    config = yaml.safe_load(SCRAPE.read_text())
    config["rule_files"] = [str(ALERTS)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason=PROMTOOL_HINT)
def test_alerts_fire_on_the_series_they_watch() -> None:
    """`promtool test rules`: p99, error ratio, shedding and store alerts fire when due and not before."""
    tests = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
    result = subprocess.run(
        ["promtool", "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

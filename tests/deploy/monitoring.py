"""What the monitoring files in deploy/ name: alert rules, dashboard queries, the metrics they use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "flagd.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
COMPOSE = ROOT / "compose.yaml"
# Series Prometheus makes itself for every target, never exposed by /metrics.
SYNTHETIC = {"up"}
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_FLAGD = re.compile(r"\b(flagd_[a-z0-9_]+)\b")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    queries += [v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    return queries


def metric_names(expression: str) -> set[str]:
    """The series a PromQL expression selects (names before ``{`` or ``[``, and every ``flagd_*`` name)."""
    expression = re.sub(r'"[^"]*"', '""', expression)  # label values are not names
    found = set(_FLAGD.findall(expression))
    found |= {name for name in _SELECTOR.findall(expression) if name not in {"by", "without", "on"}}
    return found


def runbook_sections() -> dict[str, str]:
    """``anchor -> section text`` for every ``## `` heading of docs/runbooks.md (GitHub's anchor rule)."""
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            current = re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections

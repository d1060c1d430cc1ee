"""Benchmark session helpers: a side-by-side summary (µs per user, µs per flag, ratio) after the tables.

pytest puts the repository root on ``sys.path`` (``bench/`` is a package), so ``bench.*`` and the installed
``evaluator`` import without help here.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

# (workload label, engine) -> median seconds per user evaluation, filled by bench/test_evaluator.py.
# The label's number is its flag count ("50 flags", "plain 20 flags").
MEDIANS: dict[tuple[str, str], float] = {}

# Engines that are neither flagd nor the floor: the ratio is taken against the fastest of these.
PEERS = ("flagsmith-flag-engine", "growthbook", "posthog-local")


def summary_lines() -> list[str]:
    """Markdown table rows of the medians recorded so far, grouped by flag count."""
    by_label: dict[str, dict[str, float]] = defaultdict(dict)
    for (label, engine), seconds in MEDIANS.items():
        by_label[label][engine] = seconds
    lines: list[str] = []
    for label in sorted(by_label):
        row = by_label[label]
        size = int(re.findall(r"\d+", label)[0])
        peers = [row[p] for p in PEERS if p in row]
        fastest_peer = min(peers) if peers else None
        flagsmith = row.get("flagsmith-flag-engine")
        lines.append(f"\n{label}, one user (median):")
        lines.append("| engine | µs / user | µs / flag | fastest peer ÷ engine | flagsmith ÷ engine |")
        lines.append("|---|---:|---:|---:|---:|")
        for engine, seconds in sorted(row.items(), key=lambda item: item[1]):
            ratio = f"{fastest_peer / seconds:.2f}×" if fastest_peer else "n/a"
            vs_flagsmith = f"{flagsmith / seconds:.2f}×" if flagsmith else "n/a"
            lines.append(
                f"| {engine} | {seconds * 1e6:.2f} | {seconds * 1e6 / size:.3f} | {ratio} | {vs_flagsmith} |"
            )
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the side-by-side table when any benchmark ran."""
    if MEDIANS:
        terminalreporter.write_sep("=", "flagd vs peers: in-process evaluation")
        for line in summary_lines():
            terminalreporter.write_line(line)

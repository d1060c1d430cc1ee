"""Benchmark session helpers: a side-by-side summary (µs per user, µs per flag, ratio) after the tables.

pytest puts the repository root on ``sys.path`` (``bench/`` is a package), so ``bench.*`` and the installed
``evaluator`` import without help here.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

# (flag count, engine) -> median seconds per user evaluation, filled by bench/test_evaluator.py.
MEDIANS: dict[tuple[int, str], float] = {}

# Engines that are neither flagd nor the floor: the ratio is taken against the fastest of these.
PEERS = ("flagsmith-flag-engine", "growthbook", "posthog-local")


def summary_lines() -> list[str]:
    """Markdown table rows of the medians recorded so far, grouped by flag count."""
    by_size: dict[int, dict[str, float]] = defaultdict(dict)
    for (size, engine), seconds in MEDIANS.items():
        by_size[size][engine] = seconds
    lines: list[str] = []
    for size in sorted(by_size):
        row = by_size[size]
        peers = [row[p] for p in PEERS if p in row]
        fastest_peer = min(peers) if peers else None
        lines.append(f"\n{size} flags, one user (median):")
        lines.append("| engine | µs / user | µs / flag | fastest peer ÷ engine |")
        lines.append("|---|---:|---:|---:|")
        for engine, seconds in sorted(row.items(), key=lambda item: item[1]):
            ratio = f"{fastest_peer / seconds:.2f}×" if fastest_peer else "n/a"
            lines.append(f"| {engine} | {seconds * 1e6:.2f} | {seconds * 1e6 / size:.3f} | {ratio} |")
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the side-by-side table when any benchmark ran."""
    if MEDIANS:
        terminalreporter.write_sep("=", "flagd vs peers: in-process evaluation")
        for line in summary_lines():
            terminalreporter.write_line(line)

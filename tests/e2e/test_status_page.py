"""/status and /status.json on the real server: exact counts across 2 workers, and the page in a real browser.

The browser is Debian's chromium driven by Playwright (``executable_path``; Playwright never downloads one).
The screenshot goes to ``FLAGD_TEST_ARTIFACTS`` (default ``.artifacts/`` in the repository, git-ignored).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.conftest import ROOT, FlagdServer, server_env, wait_until

pytestmark = pytest.mark.e2e
CHROMIUM = Path(os.environ.get("FLAGD_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("FLAGD_TEST_ARTIFACTS", ROOT / ".artifacts"))
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (Debian: apt-get install -y chromium)"
)


def status(server: FlagdServer) -> dict[str, Any]:
    """/status.json over a fresh connection (so either worker may answer)."""
    response = httpx.get(f"{server.url}/status.json", timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def flags_count(server: FlagdServer) -> int:
    route = status(server)["routes"].get("flags")
    return int(route["count"]) if route else 0


def test_two_workers_count_every_request_exactly_once(
    start_flagd: Callable[..., FlagdServer], tmp_path: Path
) -> None:
    """With 2 Granian workers, /status.json counts each /flags request once: 300 sent, 300 counted."""
    metrics_dir = tmp_path / "metrics"
    env = server_env(FLAGD_DATA_PATH=str(tmp_path / "flagd.db"), FLAGD_METRICS_DIR=str(metrics_dir))
    server = start_flagd(env=env, args=("--workers", "2"))
    sent = 300
    for n in range(sent):  # a fresh connection each time, so both workers answer some
        response = httpx.post(
            f"{server.url}/flags/?v=2", json={"api_key": server.project_token, "distinct_id": f"u{n}"}
        )
        assert response.status_code == 200
    wait_until(lambda: flags_count(server) >= sent, timeout=15, interval=0.2)
    for _ in range(6):  # stable, and the same whichever worker answers
        document = status(server)
        assert document["routes"]["flags"]["count"] == sent
        assert document["node"]["workers"] == 2
        time.sleep(0.2)
    decoder = msgspec.json.Decoder()
    by_worker: dict[int, int] = {}
    for path in (metrics_dir / "status").rglob("*.slice"):
        record = decoder.decode(path.read_bytes())
        flags = record["routes"].get("flags")
        if flags:
            by_worker[record["pid"]] = by_worker.get(record["pid"], 0) + flags[0]
    assert sum(by_worker.values()) == sent
    assert len(by_worker) == 2, f"one worker answered everything: {by_worker}"


@contextmanager
def traffic(server: FlagdServer) -> Iterator[threading.Event]:
    """/flags and /decide requests from two threads until the block ends (set the event to stop sooner)."""
    stop = threading.Event()

    def run(name: str) -> None:
        n = 0
        with httpx.Client(base_url=server.url, timeout=10) as http:  # one connection: one worker
            while not stop.is_set():
                n += 1
                body = {"api_key": server.project_token, "distinct_id": f"{name}-{n}"}
                http.post("/flags/?v=2", json=body)
                if n % 3 == 0:
                    http.post("/decide/?v=3", json=body)

    threads = [threading.Thread(target=run, args=(f"user{i}",), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def fmt_ms(value: float | None) -> str:
    """The page's number format for milliseconds (see ``ms()`` in page.html)."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return str(round(value))


@needs_chromium
def test_status_page_in_a_browser_shows_live_percentiles_that_match_the_json(
    start_flagd: Callable[..., FlagdServer],
) -> None:
    """In chromium, /status shows p50/p90/p99 updating under traffic, a chart, and the figures of the JSON."""
    from playwright.sync_api import sync_playwright

    server = start_flagd(args=("--workers", "2"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            requested: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            row = '#routes tr[data-route="flags"]'
            with traffic(server) as stop:
                page.goto(f"{server.url}/status")
                page.wait_for_selector(f'{row} td[data-field="p99_ms"]', timeout=20_000)
                first = page.inner_text(f'{row} td[data-field="count"]')
                page.wait_for_function(
                    """([selector, before]) => {
                        const cell = document.querySelector(selector);
                        return cell && cell.textContent !== before;
                    }""",
                    arg=[f'{row} td[data-field="count"]', first],
                    timeout=20_000,
                )
                for field in ("p50_ms", "p90_ms", "p99_ms"):
                    assert float(page.inner_text(f'{row} td[data-field="{field}"]')) > 0
                assert page.input_value("#chart-route") == "flags"  # the busiest SDK route
                # Three 10-second points on the chart (half a minute of traffic) before the picture.
                page.wait_for_function(
                    "() => (document.querySelector('#chart polyline[data-series=\"p99_ms\"]')"
                    "?.getAttribute('points') || '').split(' ').filter(Boolean).length >= 3",
                    timeout=60_000,
                )
                page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
                stop.set()

            def agrees() -> bool:
                # After the traffic stops the last minute's figures hold still: page and JSON must match.
                expected = status(server)["routes"]["flags"]
                shown = {
                    field: page.inner_text(f'{row} td[data-field="{field}"]')
                    for field in ("count", "p50_ms", "p90_ms", "p99_ms", "errors", "shed")
                }
                wanted = {
                    "count": f"{expected['count']:,}",
                    "errors": f"{expected['errors']:,}",
                    "shed": f"{expected['shed']:,}",
                    **{f: fmt_ms(expected[f]) for f in ("p50_ms", "p90_ms", "p99_ms")},
                }
                return shown == wanted

            wait_until(agrees, timeout=20, interval=0.5)
            assert page.inner_text("#role") == "embedded"
            assert page.inner_text("#workers") == "2"
            assert page.inner_text("#store-state") == "reachable"
            assert all(url.startswith(server.url) for url in requested), requested
            assert not errors, errors
        finally:
            browser.close()


def test_status_shows_a_distributed_node_as_syncer_with_its_store_reachable(
    flagd_distributed: FlagdServer,
) -> None:
    """On PostgreSQL + Redis, the node holding the syncer lock says so, with Redis reachable and a version."""
    server = flagd_distributed
    server.create_flag("on-call-flag")
    wait_until(lambda: status(server)["node"]["role"] == "syncer", timeout=20, interval=0.2)
    document = status(server)
    assert document["node"]["mode"] == "distributed"
    assert document["node"]["source"] == "redis"
    assert document["store"]["reachable"] is True
    assert document["node"]["version"] >= 1
    assert [p["project_id"] for p in document["projects"]["items"]] == [server.project_id]
    server.create_flag("on-call-flag-2")  # arrives through the change feed: its propagation lag is measured
    wait_until(lambda: status(server)["projects"]["items"][0]["lag_ms"] is not None, timeout=20, interval=0.2)
    assert status(server)["projects"]["items"][0]["lag_ms"] >= 0
    body = httpx.get(f"{server.url}/status.json", timeout=10).text
    assert server.project_token not in body
    assert "on-call-flag" not in body

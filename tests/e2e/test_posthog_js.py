"""posthog-js (from npm) in Debian's Chromium, driven by Playwright, on a page served from another origin
than flagd: the flags it loads equal /flags, the page logs no console error, and flagd answers every request
the browser makes (remote config, flags, events) with a status the page can read -- errors included."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import npm
from tests.e2e.conftest import FlagdServer
from tests.servers import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("FLAGD_TEST_CHROMIUM", "/usr/bin/chromium"))
FLAGS: dict[str, dict[str, Any]] = {
    "everyone": {"groups": [{"properties": [], "rollout_percentage": 100}]},
    "gradual": {"groups": [{"properties": [], "rollout_percentage": 40}]},
    "experiment": {
        "groups": [{"properties": [], "rollout_percentage": 100}],
        "multivariate": {
            "variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]
        },
    },
}
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>flagd + posthog-js</title></head>
<body>
<script src="/posthog.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  posthog.init(params.get("token"), {
    api_host: params.get("host"),
    persistence: "memory",
    autocapture: false,
    disable_session_recording: true,
    bootstrap: {distinctID: params.get("user")},
  });
  posthog.onFeatureFlags(() => { window.__flags = posthog.featureFlags.getFlagVariants(); });
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (``FLAGD_TEST_CHROMIUM`` overrides the path); the test skips, naming what to
    install, without it (``make test`` says so too: ``.ci/check-binaries``)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (Debian: apt-get install -y chromium)")
    return str(CHROMIUM)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A static server on its own port (another origin than flagd) with the page and posthog-js."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    shutil.copy(npm.package(npm.POSTHOG_JS) / "dist" / "array.js", root / "posthog.js")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def server(flagd_embedded: FlagdServer) -> FlagdServer:
    for key, filters in FLAGS.items():
        flagd_embedded.create_flag(key, filters, bucketing="posthog")
    return flagd_embedded


def test_posthog_js_flags_equal_flags_with_no_errors(server: FlagdServer, site: str, chromium: str) -> None:
    """For several users, posthog-js in a browser on another origin loads exactly /flags's values; there is
    no console error and every request to flagd (remote config, /flags, events) is answered 2xx."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for n in range(4):
                user = f"browser-user-{n}"
                page = browser.new_page()
                errors: list[str] = []
                failed: list[str] = []
                answered: list[tuple[str, int]] = []
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
                page.on("requestfailed", lambda r, f=failed: f.append(f"{r.url} {r.failure}"))
                page.on(
                    "response",
                    lambda r, a=answered: (
                        a.append((r.url, r.status)) if r.url.startswith(server.url) else None
                    ),
                )
                query = f"token={server.project_token}&host={server.url}&user={user}"
                page.goto(f"{site}/index.html?{query}")
                page.wait_for_function("window.__flags !== undefined", timeout=15_000)
                loaded = page.evaluate("window.__flags")
                page.wait_for_load_state("networkidle")
                errors, failed, answered = list(errors), list(failed), list(answered)  # before close aborts
                page.close()
                wire = server.flags(user)["flags"]
                assert loaded == {key: r["variant"] or r["enabled"] for key, r in wire.items()}, user
                assert errors == [], "\n".join(errors)
                assert [f for f in failed if f.startswith(server.url)] == [], user
                paths = {url[len(server.url) :].split("?")[0] for url, _ in answered}
                assert any(path.startswith("/flags") for path in paths), paths
                assert any(path.startswith("/array/") for path in paths), paths
                assert [(url, status) for url, status in answered if status >= 300] == [], user
        finally:
            browser.close()


def test_errors_reach_the_page_with_their_status(server: FlagdServer, site: str, chromium: str) -> None:
    """A token typo is a readable 401 with PostHog's error JSON in the page, not an opaque status 0."""
    from playwright.sync_api import sync_playwright

    script = """async (host) => {
        const r = await fetch(host + "/flags/?v=2", {method: "POST", body: JSON.stringify(
            {api_key: "phc_typo", distinct_id: "u"})});
        return {status: r.status, body: await r.json()};
    }"""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{site}/index.html?token=none&host={server.url}&user=u")
            answer = page.evaluate(script, server.url)
        finally:
            browser.close()
    assert answer["status"] == 401
    assert answer["body"]["type"] == "authentication_error"
    assert json.dumps(answer["body"])  # parsed JSON, readable by the page

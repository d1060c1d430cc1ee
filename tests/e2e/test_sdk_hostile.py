"""Hostile clients against the real server (Granian, RSGI): slow uploads, clients gone mid-body, deep JSON,
and arbitrary JSON on every SDK route. One server with a small in-flight cap and a short body timeout."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import PROJECT_TOKEN, FlagdServer, server_env, wait_until
from tests.flagd.strategies import nested_text, sdk_bodies
from tests.servers import free_port

pytestmark = pytest.mark.e2e

IN_FLIGHT = 4
BODY_TIMEOUT = 2
FLAGS_BODY = json.dumps({"api_key": PROJECT_TOKEN, "distinct_id": "u"}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagdServer]:
    """A real server admitting at most 4 requests at once, with a 2 s body timeout."""
    workdir: Path = tmp_path_factory.mktemp("hostile")
    env = server_env(
        FLAGD_DATA_PATH=str(workdir / "flagd.db"),
        FLAGD_SHED_MAX_IN_FLIGHT=str(IN_FLIGHT),
        FLAGD_LIMIT_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
    )
    flagd = FlagdServer(port=free_port(), env=env, workdir=workdir)
    flagd.start()
    try:
        flagd.create_flag("hostile-on")
        wait_until(lambda: "hostile-on" in flagd.flags("probe")["flags"])
        yield flagd
    finally:
        flagd.stop()


def _stalled_upload(port: int, path: str = "/flags/", declared: int = 1000) -> socket.socket:
    """A connection that sends the headers and one byte of a ``declared``-byte body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n{{"
    )
    sock.sendall(head.encode())
    return sock


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_stalled_uploads_do_not_starve_flags_and_time_out_with_408(server: FlagdServer) -> None:
    """Five times the in-flight cap of stalled uploads: /flags still answers 200; the uploads get 408."""
    socks = [_stalled_upload(server.port) for _ in range(IN_FLIGHT * 5)]
    try:
        for _ in range(10):
            answer = httpx.post(f"{server.url}/flags/?v=2", content=FLAGS_BODY, timeout=10)
            assert answer.status_code == 200, answer.text
        assert {_status_line(sock) for sock in socks} == {"HTTP/1.1 408 Request Timeout"}
    finally:
        for sock in socks:
            sock.close()


def test_client_gone_mid_body_is_counted_499_without_an_error_log(server: FlagdServer) -> None:
    """Clients that close the connection mid-body leave no error line or traceback, and count as 499."""
    before = server.metric('flagd_requests_total{route="flags",status="499"}')
    for _ in range(5):
        with contextlib.closing(_stalled_upload(server.port)):
            pass
    wait_until(lambda: server.metric('flagd_requests_total{route="flags",status="499"}') >= before + 5)
    output = server.output()
    assert "Traceback" not in output
    assert '"request failed"' not in output
    assert server.metric('flagd_requests_total{route="flags",status="500"}') == 0


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/flags/?v=2", '{"api_key": "%s", "distinct_id": "u", "person_properties": {"p": NEST}}'),
        ("/ofrep/v1/evaluate/flags", '{"context": NEST}'),
        ("/batch/", '{"api_key": "%s", "batch": [NEST]}'),
    ],
)
def test_json_nested_a_thousand_deep_is_400_naming_the_limit(
    server: FlagdServer, path: str, template: str
) -> None:
    """~1,000 levels of nesting on /flags, OFREP bulk and /batch: 400 naming max_json_depth, not a 500."""
    body = template.replace("%s", PROJECT_TOKEN).replace("NEST", nested_text(1000, "{"))
    answer = httpx.post(
        f"{server.url}{path}", content=body, headers={"Authorization": f"Bearer {PROJECT_TOKEN}"}, timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert "max_json_depth=32" in answer.text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        [
            "/flags/?v=4",
            "/decide/?v=3",
            "/batch/",
            "/e/",
            "/ofrep/v1/evaluate/flags",
            "/ofrep/v1/evaluate/flags/hostile-on",
        ]
    ),
    body=sdk_bodies(PROJECT_TOKEN),
)
def test_arbitrary_json_against_the_real_server_is_never_a_5xx(
    server: FlagdServer, path: str, body: bytes
) -> None:
    """Arbitrary bodies on every SDK route of the real server get 2xx/4xx answers."""
    answer = httpx.post(
        f"{server.url}{path}", content=body, headers={"Authorization": f"Bearer {PROJECT_TOKEN}"}, timeout=10
    )
    assert 200 <= answer.status_code < 500, answer.text

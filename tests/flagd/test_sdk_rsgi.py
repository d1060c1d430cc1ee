"""``flagd serve`` over RSGI: SDK paths answered natively, the admin API through the RSGI→ASGI bridge.

One real server (Granian, RSGI, embedded mode) with small body limits serves every test here.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import FlagdServer, server_env
from tests.servers import free_port

pytestmark = pytest.mark.e2e

SDK_LIMIT = 4096
ADMIN_LIMIT = 2048


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagdServer]:
    """A real server with ``max_body_bytes`` 4 KB (SDK) and 2 KB (admin)."""
    workdir: Path = tmp_path_factory.mktemp("rsgi")
    env = server_env(
        FLAGD_DATA_PATH=str(workdir / "flagd.db"),
        FLAGD_LIMIT_MAX_BODY_BYTES=str(SDK_LIMIT),
        FLAGD_ADMIN_MAX_BODY_BYTES=str(ADMIN_LIMIT),
    )
    flagd = FlagdServer(port=free_port(), env=env, workdir=workdir)
    flagd.start()
    try:
        yield flagd
    finally:
        flagd.stop()


def _chunks(total: int, size: int = 512) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_admin_api_reads_body_query_and_headers_through_the_bridge(server: FlagdServer) -> None:
    """A flag created with a JSON body is found by ``?search=`` and the response headers come back intact."""
    created = server.request(
        "POST",
        f"/api/projects/{server.project_id}/feature_flags/",
        json={"key": "bridge-flag", "name": "via the bridge"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == f'"{created.json()["version"]}"'
    server.create_flag("other-flag")
    found = server.request(
        "GET", f"/api/projects/{server.project_id}/feature_flags/", params={"search": "bridge", "limit": "1"}
    )
    assert found.status_code == 200
    assert [flag["key"] for flag in found.json()["results"]] == ["bridge-flag"]
    unauthenticated = httpx.get(f"{server.url}/api/projects/")
    assert unauthenticated.status_code == 401
    assert httpx.get(f"{server.url}/no/such/path").status_code == 404


def _post_chunked_until_answered(server: FlagdServer, path: str, total: int) -> bytes:
    """POST ``total`` bytes of chunked body in 512-byte chunks over a raw socket, stopping as soon as the
    server answers (a server refusing mid-stream may close before the client is done; httpx then reports only
    a disconnect). Returns what the server sent, b"" if it closed without answering."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.admin_key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in _chunks(total):
                if select.select([sock], [], [], 0.02)[0]:
                    break
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while b"\r\n\r\n" not in received or len(received) < received.index(b"\r\n\r\n") + 40:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except (ConnectionResetError, TimeoutError):
            pass
    return received


def test_admin_chunked_body_over_the_limit_is_413(server: FlagdServer) -> None:
    """A chunked admin body past the admin limit is refused with 413 while it streams in, and nothing is
    created."""
    path = f"/api/projects/{server.project_id}/feature_flags/"
    answer = _post_chunked_until_answered(server, path, ADMIN_LIMIT * 4)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"request_too_large"' in answer
    small = server.request(
        "POST", path, content=iter([b'{"key": "chunked-flag",', b' "name": "in two chunks"}'])
    )
    assert small.status_code == 201, small.text
    assert small.json()["key"] == "chunked-flag"
    listed = server.request("GET", path).json()["results"]
    assert "chunked-flag" in [flag["key"] for flag in listed]


def test_flags_answer_natively_with_query_string_and_request_id(server: FlagdServer) -> None:
    """/flags?v=2 reads the body, the query and X-Request-Id, and answers the v2 shape with the id echoed."""
    server.create_flag("rsgi-on")
    body = json.dumps({"api_key": server.project_token, "distinct_id": "u1"}).encode()
    answer = httpx.post(
        f"{server.url}/flags/?v=2&compression=gzip",
        content=gzip.compress(body),
        headers={"X-Request-Id": "req-rsgi-1", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-request-id"] == "req-rsgi-1"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.json()["flags"]["rsgi-on"]["enabled"] is True
    wrong = httpx.get(f"{server.url}/flags/")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_sdk_chunked_bodies_are_read_and_cut_off_at_the_limit(server: FlagdServer) -> None:
    """A chunked /flags body within the limit is evaluated; past it the answer is 413."""
    body = json.dumps({"api_key": server.project_token, "distinct_id": "u2"}).encode()
    ok = httpx.post(f"{server.url}/flags/?v=2", content=iter([body[:10], body[10:]]))
    assert ok.status_code == 200, ok.text
    assert ok.json()["errorsWhileComputingFlags"] is False
    refused = httpx.post(f"{server.url}/flags/?v=2", content=_chunks(SDK_LIMIT * 3))
    assert refused.status_code == 413
    declared = httpx.post(f"{server.url}/flags/?v=2", content=b" " * (SDK_LIMIT + 1))
    assert declared.status_code == 413


def test_definitions_etag_and_probes_over_rsgi(server: FlagdServer) -> None:
    """Local-evaluation definitions honour If-None-Match (304) and /readyz reports the loaded snapshot."""
    url = f"{server.url}/api/feature_flag/local_evaluation?token={server.project_token}"
    auth = {"Authorization": f"Bearer {server.project_secret}"}
    first = httpx.get(url, headers=auth)
    assert first.status_code == 200
    again = httpx.get(url, headers={**auth, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


def test_shutdown_runs_the_lifespan(tmp_path: Path) -> None:
    """Stopping the server runs the admin lifespan's shutdown (the store is closed: 'flagd.stopped')."""
    flagd = FlagdServer(
        port=free_port(), env=server_env(FLAGD_DATA_PATH=str(tmp_path / "stop.db")), workdir=tmp_path
    )
    flagd.start()
    try:
        assert "flagd.started" in flagd.output()
    finally:
        flagd.stop()
    assert flagd.proc is not None
    assert flagd.proc.returncode == 0
    assert "flagd.stopped" in flagd.output()

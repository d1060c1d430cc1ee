"""Logging policy of the SDK path and request ids: quiet by default, slow/sampled/error lines carry the id."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from flagd.limits import Limits
from flagd.logging import RequestIds
from tests.flagd.sdk_support import TOKEN_A, client, make_app

BODY = json.dumps({"api_key": TOKEN_A, "distinct_id": "u1"})


async def test_fast_requests_log_nothing_by_default() -> None:
    """With default limits a normal /flags request writes no log line."""
    with capture_logs() as logs:
        async with client(make_app()) as http:
            assert (await http.post("/flags?v=2", content=BODY)).status_code == 200
    assert [entry for entry in logs if entry["log_level"] != "debug"] == []


async def test_slow_requests_are_logged_with_their_request_id() -> None:
    """A request over slow_request_seconds is logged at warning with route, status and request id."""
    with capture_logs() as logs:
        async with client(make_app(limits=Limits(slow_request_seconds=0))) as http:
            response = await http.post("/flags?v=2", content=BODY, headers={"X-Request-Id": "req-77"})
    slow = [entry for entry in logs if entry["event"] == "slow request"]
    assert slow
    assert slow[0]["request_id"] == "req-77"
    assert slow[0]["route"] == "flags"
    assert slow[0]["status"] == 200
    assert response.headers["x-request-id"] == "req-77"


async def test_sampling_logs_every_request_at_rate_one() -> None:
    """log_sample_rate=1 writes an info line per request."""
    with capture_logs() as logs:
        async with client(make_app(limits=Limits(log_sample_rate=1.0))) as http:
            for _ in range(3):
                await http.post("/flags?v=2", content=BODY)
    assert sum(1 for entry in logs if entry["event"] == "request") == 3


async def test_rejections_are_logged_at_debug_only() -> None:
    """A 401 is recorded at debug level with its code, never at info or above."""
    with capture_logs() as logs:
        async with client(make_app()) as http:
            await http.post("/flags?v=2", content=json.dumps({"api_key": "bad", "distinct_id": "u"}))
    rejected = [entry for entry in logs if entry["event"] == "request rejected"]
    assert rejected
    assert rejected[0]["log_level"] == "debug"
    assert rejected[0]["code"] == "invalid_api_key"


def test_request_ids_are_unique_uuid_shaped_and_respect_client_ids() -> None:
    """Generated ids are distinct UUID strings; usable client ids are kept, unusable ones replaced."""
    import uuid

    ids = RequestIds(max_chars=16)
    made = {ids.new() for _ in range(1000)}
    assert len(made) == 1000
    for rid in list(made)[:5]:
        uuid.UUID(rid)
    assert ids.pick(b"abc-123") == "abc-123"
    assert ids.pick(b"x" * 17) != "x" * 17
    assert ids.pick(b"bad\x00id") != "bad\x00id"
    assert ids.pick(None) not in made


def test_configure_logging_writes_json_lines(tmp_path: Path) -> None:
    """In JSON mode, structlog and stdlib loggers both write one JSON object per line with level and time."""
    script = (
        "import logging, structlog\n"
        "from flagd.logging import configure_logging\n"
        "configure_logging('json', 'info')\n"
        "structlog.get_logger('flagd').info('hello', request_id='r1')\n"
        "structlog.get_logger('flagd').debug('hidden')\n"
        "logging.getLogger('granian').warning('from stdlib %s', 1)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=root
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["hello", "from stdlib 1"]
    assert lines[0]["request_id"] == "r1"
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]
    assert lines[1]["logger"] == "granian"


def test_configure_logging_rejects_unknown_values() -> None:
    """A bad format or level is a loud error."""
    import pytest

    from flagd.logging import configure_logging

    with pytest.raises(ValueError, match="format"):
        configure_logging("xml", "info")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", "loud")


async def test_request_id_is_bound_for_log_lines_below_io_routes() -> None:
    """Lines logged by code running under /flags/definitions (e.g. the key lookup) carry the request id."""
    import structlog

    from tests.flagd.sdk_support import PERSONAL_A, KeyBook

    class LoggingKeys(KeyBook):
        async def __call__(self, raw_key: str) -> Any:
            structlog.get_logger("store").info("key lookup")
            return await super().__call__(raw_key)

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with client(make_app(keys=LoggingKeys())) as http:
            response = await http.get(
                f"/flags/definitions?token={TOKEN_A}",
                headers={"Authorization": f"Bearer {PERSONAL_A}", "X-Request-Id": "req-io-1"},
            )
    assert response.status_code == 200
    lookups = [entry for entry in logs if entry["event"] == "key lookup"]
    assert lookups
    assert lookups[0]["request_id"] == "req-io-1"


async def test_slow_request_lines_are_capped_per_second() -> None:
    """When every request is slow, at most 10 slow-request lines a second are written, and later lines say
    how many were skipped (however long the burst takes on a busy machine)."""
    requests = 200
    with capture_logs() as logs:
        async with client(make_app(limits=Limits(slow_request_seconds=0))) as http:
            started = time.monotonic()
            for _ in range(requests):
                await http.post("/flags?v=2", content=BODY)
            elapsed = time.monotonic() - started
    slow = [entry for entry in logs if entry["event"] == "slow request"]
    windows = int(elapsed) + 1  # one-second windows the burst can touch
    assert 10 <= len(slow) <= 10 * windows
    assert len(slow) < requests or elapsed >= requests / 10  # capped, unless the burst was very slow
    assert slow[0]["skipped_since_last"] == 0
    assert sum(entry["skipped_since_last"] for entry in slow) <= requests - len(slow)
    if len(slow) > 10 and elapsed < 1.0:
        raise AssertionError("more than 10 lines within one second")

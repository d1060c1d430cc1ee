"""Property-based fuzzing of every operation in the OpenAPI document a real ``flagd serve`` serves
(schemathesis): whatever it sends, the answer is never a 5xx. Bounded so ``make test`` stays fast."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.e2e.conftest import FlagdServer

pytestmark = pytest.mark.e2e


# Both generation modes: requests the schema allows, and requests that break it on purpose.
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def _failures(operation: schemathesis.APIOperation, server: FlagdServer, examples: int) -> list[str]:
    """Every 5xx one bounded run over ``operation`` provokes, each with the request that did it."""
    found: list[str] = []
    headers = {"Authorization": f"Bearer {server.admin_key}"}

    def probe(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=10)
        if response.status_code >= 500:
            body = response.request.body or b""
            sent = body[:300] if isinstance(body, bytes) else str(body)[:300].encode()
            found.append(f"{case.method} {case.formatted_path} {sent!r} -> {response.status_code}")

    for mode in MODES:
        strategy = operation.as_strategy(generation_mode=mode)
        run = settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(probe))
        try:
            run()
        except Unsatisfiable:  # nothing to break in an operation without inputs (negative mode)
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return found


def _fuzz(server: FlagdServer, examples: int) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures = [failure for operation in operations for failure in _failures(operation, server, examples)]
    assert not failures, "\n".join(failures) + "\n" + server.output()[-4000:]


def test_no_operation_answers_5xx_embedded(flagd_embedded: FlagdServer) -> None:
    """Every operation in the served OpenAPI document, fuzzed with valid and invalid input, never 5xx."""
    _fuzz(flagd_embedded, examples=6)


@pytest.mark.integration
def test_no_operation_answers_5xx_distributed(flagd_distributed: FlagdServer) -> None:
    """The same on PostgreSQL + Redis, whose types differ from SQLite's (NUL, int64, jsonb)."""
    _fuzz(flagd_distributed, examples=3)


@pytest.mark.integration
def test_nul_characters_are_400_on_postgresql(flagd_distributed: FlagdServer) -> None:
    """PostgreSQL cannot store or compare NUL: a NUL in a search, a name or a filter value is a 400 there."""
    server, pid = flagd_distributed, flagd_distributed.project_id
    flags = f"/api/projects/{pid}/feature_flags/"
    assert server.request("GET", flags, params={"search": "a\x00b"}).status_code == 400
    assert server.request("GET", flags, params={"search": "x" * 201}).status_code == 400
    assert server.request("POST", flags, json={"key": "k", "name": "a\x00"}).status_code == 400
    assert server.request("PATCH", f"/api/projects/{pid}/", json={"name": "\x00"}).status_code == 400
    assert server.request("GET", flags).json()["count"] == 0

"""GET /flags/definitions and /api/feature_flag/local_evaluation: auth, project, ETag/304, key cache."""

from __future__ import annotations

import asyncio
import json

import pytest

from flagd.limits import Limits
from tests.flagd.sdk_support import (
    PERSONAL_A,
    PERSONAL_ALL,
    PERSONAL_REVOKED,
    SECRET_A,
    SECRET_B,
    TOKEN_A,
    TOKEN_B,
    KeyBook,
    client,
    make_app,
    make_catalog,
)

PATHS = [
    "/flags/definitions",
    "/flags/definitions/",
    "/api/feature_flag/local_evaluation",
    "/api/feature_flag/local_evaluation/",
]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("path", PATHS)
async def test_project_secret_gets_the_local_evaluation_body_with_etag(path: str) -> None:
    """The project secret fetches exactly the catalog's pre-encoded body, with its ETag."""
    catalog = make_catalog()
    state = catalog.by_token(TOKEN_A)
    assert state is not None
    async with client(make_app(catalog)) as http:
        response = await http.get(f"{path}?token={TOKEN_A}&send_cohorts", headers=auth(SECRET_A))
    assert response.status_code == 200
    assert response.content == state.local_eval_body
    assert response.headers["etag"] == state.local_eval_etag
    body = json.loads(response.content)
    keys = {f["key"] for f in body["flags"]}
    assert "always-on" in keys
    assert "murmur-flag" not in keys  # not reproducible by an SDK
    assert body["group_type_mapping"] == {"0": "company"}


async def test_matching_if_none_match_is_304() -> None:
    """Polling with the current ETag gets 304 and no body; a stale ETag gets the body again."""
    async with client(make_app()) as http:
        first = await http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth(SECRET_A))
        etag = first.headers["etag"]
        again = await http.get(
            f"/flags/definitions?token={TOKEN_A}", headers={**auth(SECRET_A), "If-None-Match": etag}
        )
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        stale = await http.get(
            f"/flags/definitions?token={TOKEN_A}", headers={**auth(SECRET_A), "If-None-Match": '"old"'}
        )
        assert stale.status_code == 200


@pytest.mark.parametrize(
    ("token", "secret", "status"),
    [
        (TOKEN_A, SECRET_B, 401),  # another project's secret
        (TOKEN_A, "phs_wrong", 401),  # nothing at all
        (TOKEN_B, PERSONAL_A, 403),  # a personal key scoped to project A reading B
        (TOKEN_A, PERSONAL_REVOKED, 403),  # revoked key
        ("phc_unknown", SECRET_A, 401),  # unknown project token
    ],
)
async def test_wrong_credentials_are_refused(token: str, secret: str, status: int) -> None:
    """Secrets of other projects, unknown keys, keys outside their scope and revoked keys get 401/403."""
    async with client(make_app()) as http:
        response = await http.get(f"/flags/definitions?token={token}", headers=auth(secret))
    assert response.status_code == status
    assert response.json()["type"] == "authentication_error"


async def test_missing_authorization_is_401() -> None:
    """Without a bearer token the definitions are not served."""
    async with client(make_app()) as http:
        response = await http.get(f"/flags/definitions?token={TOKEN_A}")
    assert response.status_code == 401


@pytest.mark.parametrize("key", [PERSONAL_A, PERSONAL_ALL])
async def test_personal_keys_with_read_access_work(key: str) -> None:
    """A personal API key that may read the project gets its definitions."""
    catalog = make_catalog()
    async with client(make_app(catalog)) as http:
        response = await http.get(f"/api/feature_flag/local_evaluation?token={TOKEN_A}", headers=auth(key))
    assert response.status_code == 200
    state = catalog.by_token(TOKEN_A)
    assert state is not None
    assert response.content == state.local_eval_body


async def test_project_scoped_key_needs_no_token() -> None:
    """Without ?token=, a key scoped to one project selects that project; a global key must name one."""
    catalog = make_catalog()
    async with client(make_app(catalog)) as http:
        scoped = await http.get("/api/feature_flag/local_evaluation", headers=auth(PERSONAL_A))
        assert scoped.status_code == 200
        state = catalog.by_id(1)
        assert state is not None
        assert scoped.content == state.local_eval_body
        unscoped = await http.get("/api/feature_flag/local_evaluation", headers=auth(PERSONAL_ALL))
        assert unscoped.status_code == 400
        assert unscoped.json()["attr"] == "token"


async def test_poll_storm_hits_authenticate_once_per_key() -> None:
    """Many concurrent and repeated polls with one personal key cost one authenticate call while cached."""
    keys = KeyBook(delay=0.01)  # slow enough that the concurrent polls overlap
    app = make_app(keys=keys)
    async with client(app) as http:
        answers = await asyncio.gather(
            *(http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth(PERSONAL_A)) for _ in range(20))
        )
        answers.append(await http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth(PERSONAL_A)))
    assert all(a.status_code == 200 for a in answers)
    assert keys.calls == 1


async def test_unknown_keys_are_cached_too() -> None:
    """A storm of bad keys does not reach authenticate more than once per key while cached."""
    keys = KeyBook()
    async with client(make_app(keys=keys)) as http:
        for _ in range(5):
            response = await http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth("phx_bogus"))
            assert response.status_code == 401
    assert keys.calls == 1


async def test_cache_can_be_switched_off() -> None:
    """With auth_cache_seconds=0 every poll authenticates again (a revoked key stops working at once)."""
    keys = KeyBook()
    async with client(make_app(keys=keys, limits=Limits(auth_cache_seconds=0))) as http:
        for _ in range(3):
            assert (
                await http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth(PERSONAL_A))
            ).status_code == 200
    assert keys.calls == 3


async def test_project_secret_never_calls_authenticate() -> None:
    """The project secret is checked against the catalog's hash alone, without a key lookup."""
    keys = KeyBook()
    async with client(make_app(keys=keys)) as http:
        response = await http.get(f"/flags/definitions?token={TOKEN_A}", headers=auth(SECRET_A))
    assert response.status_code == 200
    assert keys.calls == 0

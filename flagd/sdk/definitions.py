"""``GET /flags/definitions`` and ``/api/feature_flag/local_evaluation``: flag definitions for SDK local
evaluation.

Auth: ``Authorization: Bearer <secret>`` where the secret is either the project's local-evaluation secret
(compared by sha256 with ``ProjectState.secret_token_hash``, in constant time) or a personal API key that
may read the project (looked up through ``authenticate``; hits and misses are cached for
``Limits.auth_cache_seconds`` and concurrent lookups of one key share a single call, so a poll storm from
many SDK instances costs one database query per key per interval). The project is named by
``?token=<phc_...>``; without it, a personal key scoped to one project selects that project.

The body is the pre-encoded ``ProjectState.local_eval_body`` (only flags an SDK can reproduce exactly) with
its ``ETag``; a matching ``If-None-Match`` gets ``304 Not Modified`` and no body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable

from cachetools import TTLCache

from flagd.errors import BadRequest, Forbidden, Unauthorized
from flagd.limits import Limits
from flagd.sdk.http import JSON, Answer, Request, parse_query
from flagd.sdk.projects import project_for
from store.catalog import Catalog, ProjectState
from store.records import ApiKey

Authenticate = Callable[[str], Awaitable[ApiKey | None]]


class KeyCache:
    """``authenticate`` with a short TTL cache (hits and misses) and one in-flight lookup per key."""

    __slots__ = ("_authenticate", "_cache", "_pending")

    def __init__(self, authenticate: Authenticate, ttl: float, size: int = 4096) -> None:
        self._authenticate = authenticate
        self._cache: TTLCache[str, ApiKey | None] = (
            TTLCache(maxsize=size, ttl=ttl) if ttl > 0 else TTLCache(1, 0)
        )
        self._pending: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def lookup(self, raw_key: str) -> ApiKey | None:
        digest = hashlib.sha256(raw_key.encode()).hexdigest()
        try:
            return self._cache[digest]
        except KeyError:
            pass
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            found = await self._authenticate(raw_key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._pending[digest]
        future.set_result(found)
        self._cache[digest] = found
        return found


def bearer(headers: dict[bytes, bytes]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    raw = headers.get(b"authorization")
    if not raw:
        return None
    scheme, _, value = raw.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def is_project_secret(secret: str, state: ProjectState) -> bool:
    """Whether ``secret`` is the project's local-evaluation secret (constant-time sha256 comparison)."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(digest, state.secret_token_hash)


class DefinitionsEndpoint:
    """Serves the local-evaluation definitions of one project."""

    __slots__ = ("_catalog", "_keys")

    def __init__(self, catalog: Catalog, authenticate: Authenticate, limits: Limits) -> None:
        self._catalog = catalog
        self._keys = KeyCache(authenticate, limits.auth_cache_seconds)

    async def authorize(self, headers: dict[bytes, bytes], token: str | None) -> ProjectState:
        """The project a server-side SDK may read: ``?token=`` names it (a personal key scoped to one project
        may leave it out), ``Authorization: Bearer`` carries its secret or a personal API key."""
        secret = bearer(headers)
        if secret is None:
            raise Unauthorized(
                "Send the project secret or a personal API key as 'Authorization: Bearer <key>'.",
                code="authentication_required",
            )
        state = project_for(self._catalog, token, "Project API key (token) invalid.") if token else None
        if state is None or not is_project_secret(secret, state):
            key = await self._keys.lookup(secret)
            if key is None:
                raise Unauthorized("The secret or personal API key is invalid.")
            if state is None:
                if key.project_id is None:
                    raise BadRequest(
                        "token query parameter is required with a key that spans projects",
                        code="missing_token",
                        attr="token",
                    )
                state = self._catalog.by_id(key.project_id)
                if state is None:
                    raise Forbidden("This key's project is not served by this node.")
            if not key.allows(state.project_id, write=False):
                raise Forbidden("This API key may not read this project.")
        return state

    async def __call__(self, request: Request, request_id: str) -> Answer:
        headers = request.headers
        state = await self.authorize(headers, parse_query(request.query_string).get("token"))
        etag = state.local_eval_etag
        if _matches(headers.get(b"if-none-match"), etag):
            return 304, b"", [(b"etag", etag.encode())]
        return 200, state.local_eval_body, [*JSON, (b"etag", etag.encode())]


def _matches(if_none_match: bytes | None, etag: str) -> bool:
    if not if_none_match:
        return False
    wanted = etag.encode()
    for candidate in if_none_match.split(b","):
        tag = candidate.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == wanted or tag == b"*":
            return True
    return False

"""Personal API key authentication for the admin API (and the SDK's local-evaluation endpoint).

``Authenticator`` asks the repository once per key per ``ttl`` seconds (keys cached by their sha256, never by
the raw value); the admin API runs it with ``ttl=0``, so a revocation is seen by every worker and node as
soon as the DELETE has answered. Revoking or creating a key through this process clears the cache at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from cachetools import TTLCache

from store.records import ApiKey

Lookup = Callable[[str], Awaitable[ApiKey | None]]

_MISSING = object()


class Authenticator:
    """``await authenticator(raw_key) -> ApiKey | None`` with a short TTL cache in front of the repository."""

    __slots__ = ("_cache", "_lookup")

    def __init__(self, lookup: Lookup, *, ttl: float = 5.0, maxsize: int = 4096) -> None:
        self._lookup = lookup
        self._cache: TTLCache[str, ApiKey | None] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl) if ttl > 0 else None
        )

    async def __call__(self, raw_key: str) -> ApiKey | None:
        if not raw_key:
            return None
        if self._cache is None:
            return await self._lookup(raw_key)
        digest = hashlib.sha256(raw_key.encode()).hexdigest()
        cached = self._cache.get(digest, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        key = await self._lookup(raw_key)
        if key is not None and key.revoked_at is not None:
            key = None
        self._cache[digest] = key
        return key

    def invalidate(self) -> None:
        """Forget every cached answer (after a key is created or revoked here)."""
        if self._cache is not None:
            self._cache.clear()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def actor_for(key: ApiKey) -> str:
    """How an API key's writes are recorded in the audit log."""
    return f"key:{key.id} {key.label}".rstrip()

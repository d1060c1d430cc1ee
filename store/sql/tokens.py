"""Project tokens, project secrets and personal API keys.

Three kinds of credential, told apart by prefix (the PostHog convention, so users recognise them):

* ``phc_...`` public project token: identifies a project to SDKs; not a secret, stored raw.
* ``phs_...`` project secret: authorises local-evaluation downloads; stored only as ``hash_secret()``.
* ``phx_...`` personal API key: authorises the admin API; stored only as ``hash_secret()`` with a short
  display prefix (``display_prefix()``).

Random parts come from ``secrets`` (43 URL-safe characters, 256 bits); the hash is unsalted sha256 hex,
which is sound for high-entropy random tokens (nothing to brute-force) and makes lookup one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = [
    "API_KEY_PREFIX",
    "PROJECT_SECRET_PREFIX",
    "PROJECT_TOKEN_PREFIX",
    "display_prefix",
    "hash_secret",
    "new_api_key",
    "new_project_secret",
    "new_project_token",
]

PROJECT_TOKEN_PREFIX = "phc_"  # noqa: S105 - a prefix, not a secret
PROJECT_SECRET_PREFIX = "phs_"  # noqa: S105 - a prefix, not a secret
API_KEY_PREFIX = "phx_"
_RANDOM_BYTES = 32  # token_urlsafe(32) -> 43 characters
_DISPLAY_CHARS = 8  # random characters kept after the prefix for display


def _new(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(_RANDOM_BYTES)


def new_project_token() -> str:
    """A fresh public project token, ``phc_`` + 43 random URL-safe characters."""
    return _new(PROJECT_TOKEN_PREFIX)


def new_project_secret() -> str:
    """A fresh project secret, ``phs_`` + 43 random URL-safe characters (show once, store hashed)."""
    return _new(PROJECT_SECRET_PREFIX)


def new_api_key() -> str:
    """A fresh personal API key, ``phx_`` + 43 random URL-safe characters (show once, store hashed)."""
    return _new(API_KEY_PREFIX)


def hash_secret(raw: str) -> str:
    """sha256 hex of a raw secret or key: what the store keeps and compares."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def display_prefix(raw: str) -> str:
    """The first characters of a key (its ``phx_`` prefix and a few random ones), safe to show in listings."""
    head, sep, _ = raw.partition("_")
    if sep and len(head) <= 4:
        return raw[: len(head) + 1 + _DISPLAY_CHARS]
    return raw[:_DISPLAY_CHARS]

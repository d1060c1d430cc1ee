"""Credentials: prefixed, random, and stored only as sha256 hashes."""

from __future__ import annotations

import hashlib

from store.sql import tokens


def test_tokens_have_their_prefix_and_enough_randomness() -> None:
    """Each kind carries its prefix and at least 32 random characters, and never repeats."""
    for make, prefix in [
        (tokens.new_project_token, "phc_"),
        (tokens.new_project_secret, "phs_"),
        (tokens.new_api_key, "phx_"),
    ]:
        made = {make() for _ in range(200)}
        assert len(made) == 200
        assert all(t.startswith(prefix) and len(t) - len(prefix) >= 32 for t in made)


def test_hash_secret_is_sha256_hex() -> None:
    """The stored form is the sha256 hex digest of the raw value."""
    assert tokens.hash_secret("phx_abc") == hashlib.sha256(b"phx_abc").hexdigest()


def test_display_prefix_shows_the_kind_and_a_few_characters() -> None:
    """A display prefix keeps the kind and 8 random characters, never the whole key."""
    key = tokens.new_api_key()
    shown = tokens.display_prefix(key)
    assert shown == key[:12]
    assert len(shown) < len(key)

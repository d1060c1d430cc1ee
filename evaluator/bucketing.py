"""Consistent-hash bucketing: which users a rollout lets in, which variant they get, who is held out.

Every flag records its scheme in its top-level ``"bucketing"`` field (absent means ``"murmur3"``), so
changing the default for new flags never moves a user of an existing flag. Neither scheme keeps state: the
same flag key and bucketing id give the same answer on every node, in every process, after every restart.
Changing a percentage moves only the users between the old and the new threshold; changing anything else
(names, order of other flags, other flags' percentages) moves nobody.

``murmur3`` (default for flags created in flagd; reproduces flagd's ``fractional`` operator)
    Hash: MurmurHash3 x86_32, seed 0, unsigned (``mmh3.hash(data, signed=False)``), over the RFC 8949
    deterministic CBOR encoding of an array of UTF-8 text strings -- the encoding flagd >= 1.0 and
    ``openfeature-flagd-core`` 2.x hash (ADR "Harden Hashing Consistency"), not the raw concatenation
    ``flag_key + id`` that older flagd releases hashed: each text string is its length header (major type 3,
    shortest form) followed by its bytes, the array is ``0x80 | n`` followed by its items.

    * variant: ``h = mmh3(cbor([flag_key, bucketing_id]))``; ``variant_value = h / 2**32`` in [0, 1). The
      percentages become integer weights in hundredths of a percent (``round(pct * 100)``, 33.33 -> 3333),
      ``bucket = (h * total_weight) >> 32`` and the first variant, in stored order, whose cumulative weight
      exceeds ``bucket`` wins -- bit for bit flagd's ``fractional`` with those weights. Percentages that do
      not sum to 100 split everyone in proportion to their sum (flagd's rule); a zero total gives ``None``.
    * rollout: ``h = mmh3(cbor([flag_key, bucketing_id, "rollout"]))``; ``rollout_value = h / 2**32``; in iff
      ``value < pct / 100`` (``pct >= 100`` -> always in, ``pct <= 0`` -> never). The third element is a salt:
      rollout membership and variant come from different hashes, so who is let in says nothing about which
      variant they get.
    * holdout: ``h = mmh3(cbor([str(holdout_id), bucketing_id, "holdout"]))``; in iff ``value < pct / 100``
      (same edges). Each holdout holds out its own, independent set of users.

``posthog`` (reproduces every PostHog SDK's local evaluation; needed for flags served to SDKs)
    ``hash01(s) = int(sha1(s.encode()).hexdigest()[:15], 16) / float(0xFFFFFFFFFFFFFFF)``, in [0, 1]. The
    divisor is a float, as in PostHog: an exact integer division rounds differently for some ids.

    * rollout: ``hash01(flag_key + "." + bucketing_id)``; in iff ``value <= pct / 100`` (so 100 is always in;
      0 lets in only the one-in-2**60 id hashing to exactly 0, as PostHog does).
    * variant: ``hash01(flag_key + "." + bucketing_id + "variant")``; walk the variants in stored order adding
      ``pct / 100`` to a running float boundary (the same additions, in the same order, as PostHog) and take
      the first with ``value < boundary``; none -> ``None``.
    * holdout: ``hash01("holdout-" + bucketing_id)``. The holdout id is NOT part of the input -- PostHog's
      server and SDKs hash it this way, so all holdouts with the same percentage hold out the same users.
      The percentage is clamped to [0, 100]; 100 -> always in, else in iff ``value <= pct / 100``.

Why nothing reshuffles: each value depends only on (flag key, bucketing id) and fixed salts; each
comparison is a fixed threshold (rollout, holdout) or a fixed partition of the unit interval in stored order
(variants), so a user's bucket never depends on anything but the flag's own definition. Raising a rollout
percentage only raises the threshold: every user in at ``p`` is in at every ``q >= p``.

Strings that are not valid UTF-8 (lone surrogates from JSON ``"\\ud800"``) are encoded with
``surrogatepass`` instead of raising: bucketing sits on the hot path and never fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import mmh3

__all__ = ["SCHEME_NAMES", "BucketingScheme", "Murmur3Bucketing", "PostHogBucketing", "get_scheme"]

SCHEME_NAMES: tuple[str, ...] = ("murmur3", "posthog")


class BucketingScheme(Protocol):
    """How a flag maps a bucketing id to rollout membership, a variant and holdout membership."""

    name: str

    def rollout_value(self, flag_key: str, bucketing_id: str) -> float:
        """The user's rollout position for this flag, in [0, 1]."""
        ...

    def in_rollout(self, value: float, percentage: float) -> bool:
        """Whether a rollout position is inside a ``percentage`` (0-100) rollout; monotone in percentage."""
        ...

    def variant_value(self, flag_key: str, bucketing_id: str) -> float:
        """The user's variant position for this flag, in [0, 1)."""
        ...

    def pick_variant(self, value: float, variants: Sequence[tuple[str, float]]) -> str | None:
        """The variant (key, percentage pairs in stored order) a variant position falls in, or None."""
        ...

    def holdout_value(self, holdout_id: int | str, bucketing_id: str) -> float:
        """The user's position for a holdout, in [0, 1]."""
        ...

    def in_holdout(self, value: float, exclusion_percentage: float) -> bool:
        """Whether a holdout position is inside an ``exclusion_percentage`` (0-100) holdout."""
        ...


_TWO_32 = 4294967296.0
_CACHE_LIMIT = 65536  # flag keys, holdout ids and variant lists: bounded, each entry a few hundred bytes
# MurmurHash3 x86_32, seed 0, unsigned: ``mmh3.hash(data)``; this entry point skips the
# argument parsing and sign handling, about half the cost per call.
_mmh3_hash: Callable[[bytes], int] = mmh3.mmh3_32_uintdigest
_SHORT_TEXT = tuple(bytes((0x60 | size,)) for size in range(24))  # CBOR text headers for 0-23 bytes


def _utf8(text: str) -> bytes:
    try:
        return text.encode()  # the argument-free call is CPython's fast path
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _cbor_header(size: int) -> bytes:
    """RFC 8949 deterministic CBOR header of a text string of ``size`` UTF-8 bytes (shortest form)."""
    if size < 24:
        return _SHORT_TEXT[size]
    if size < 0x100:
        return bytes((0x78, size))
    if size < 0x10000:
        return b"\x79" + size.to_bytes(2, "big")
    if size < 0x100000000:
        return b"\x7a" + size.to_bytes(4, "big")
    return b"\x7b" + size.to_bytes(8, "big")


def _cbor_text(text: str) -> bytes:
    """RFC 8949 deterministic CBOR of one text string: shortest-form length header, then the UTF-8 bytes."""
    data = _utf8(text)
    return _cbor_header(len(data)) + data


_ROLLOUT_SALT = _cbor_text("rollout")
_HOLDOUT_SALT = _cbor_text("holdout")


class Murmur3Bucketing:
    """flagd-compatible bucketing: MurmurHash3 x86_32 over deterministic CBOR, integer weights."""

    name = "murmur3"

    __slots__ = ("_last_id", "_pair_prefix", "_tables", "_triple_prefix")

    def __init__(self) -> None:
        # The CBOR head of a flag key (or holdout id) and a variant list's cumulative weights are the same
        # on every call: work them out once. Bounded: cleared when full, recomputed on demand.
        self._pair_prefix: dict[str, bytes] = {}
        self._triple_prefix: dict[str, bytes] = {}
        self._tables: dict[tuple[tuple[str, float], ...], tuple[int, tuple[tuple[str, int], ...]]] = {}
        # One request hashes the same id object for every flag: keep its encoding, alone and followed by
        # the rollout salt. A single tuple, replaced whole, so threads never see an id paired with another
        # id's bytes; the tuple holds the id alive, so the identity test cannot match a recycled object.
        empty = _cbor_text("")
        self._last_id: tuple[str, bytes, bytes] = ("", empty, empty + _ROLLOUT_SALT)

    def _encoded_id(self, bucketing_id: str) -> bytes:
        last = self._last_id
        if last[0] is bucketing_id:
            return last[1]
        return self._remember(bucketing_id)[1]

    def _remember(self, bucketing_id: str) -> tuple[str, bytes, bytes]:
        encoded = _cbor_text(bucketing_id)
        last = self._last_id = (bucketing_id, encoded, encoded + _ROLLOUT_SALT)
        return last

    def rollout_head(self, flag_key: str) -> bytes:
        """What every rollout hash of ``flag_key`` starts with (for ``rollout_hash``): worked out once, when
        a flag compiles."""
        return b"\x83" + _cbor_text(flag_key)

    def rollout_hash(self, head: bytes, bucketing_id: str) -> int:
        """``mmh3(cbor([flag_key, bucketing_id, "rollout"]))`` from ``rollout_head(flag_key)``: one
        concatenation and one hash per flag; ``rollout_value`` is this divided by ``2**32``."""
        last = self._last_id
        if last[0] is not bucketing_id:
            last = self._remember(bucketing_id)
        return _mmh3_hash(head + last[2])

    def variant_head(self, flag_key: str) -> bytes:
        """What every variant hash of ``flag_key`` starts with (for ``variant_hash_from``)."""
        return b"\x82" + _cbor_text(flag_key)

    def variant_hash_from(self, head: bytes, bucketing_id: str) -> int:
        """``variant_hash`` from ``variant_head(flag_key)``; ``variant_value`` is this divided by 2**32."""
        last = self._last_id
        if last[0] is not bucketing_id:
            last = self._remember(bucketing_id)
        return _mmh3_hash(head + last[1])

    def weights(self, variants: Sequence[tuple[str, float]]) -> tuple[int, tuple[tuple[str, int], ...]]:
        """A variant list as ``pick_variant`` walks it: the total weight, and each variant with its
        cumulative weight (in 1/100 %), in stored order."""
        total = 0
        cumulative: list[tuple[str, int]] = []
        for variant, pct in variants:
            total += max(0, round(pct * 100))
            cumulative.append((variant, total))
        return total, tuple(cumulative)

    def _pair(self, first: str) -> bytes:
        if len(self._pair_prefix) >= _CACHE_LIMIT:
            self._pair_prefix.clear()
        prefix = self._pair_prefix[first] = self.variant_head(first)
        return prefix

    def _triple(self, first: str) -> bytes:
        if len(self._triple_prefix) >= _CACHE_LIMIT:
            self._triple_prefix.clear()
        prefix = self._triple_prefix[first] = self.rollout_head(first)
        return prefix

    def variant_hash(self, flag_key: str, bucketing_id: str) -> int:
        """flagd's ``fractional`` hash for ``targetingKey=bucketing_id``: unsigned 32-bit."""
        return self.variant_hash_from(self._pair_prefix.get(flag_key) or self._pair(flag_key), bucketing_id)

    def rollout_value(self, flag_key: str, bucketing_id: str) -> float:
        """``mmh3(cbor([flag_key, bucketing_id, "rollout"])) / 2**32``, in [0, 1)."""
        head = self._triple_prefix.get(flag_key) or self._triple(flag_key)
        return self.rollout_hash(head, bucketing_id) / _TWO_32

    def in_rollout(self, value: float, percentage: float) -> bool:
        """In iff ``value < percentage / 100``; 100 or more is everyone, 0 or less is nobody."""
        return percentage >= 100 or value < percentage / 100

    def variant_value(self, flag_key: str, bucketing_id: str) -> float:
        """``mmh3(cbor([flag_key, bucketing_id])) / 2**32``, in [0, 1); exact, so the hash is recoverable."""
        head = self._pair_prefix.get(flag_key) or self._pair(flag_key)
        return self.variant_hash_from(head, bucketing_id) / _TWO_32

    def pick_variant(self, value: float, variants: Sequence[tuple[str, float]]) -> str | None:
        """flagd's walk: weights in 1/100 %, ``bucket = (h * total) >> 32``, first cumulative above it."""
        try:
            total, cumulative = self._tables[variants]  # type: ignore[index]
        except (KeyError, TypeError):  # not seen yet, or a list (unhashable): computed, not cached
            total, cumulative = self._table(variants)
        if total <= 0:
            return None
        # value = h / 2**32 is exact in a double (h < 2**32), so this recovers h bit for bit.
        bucket = (int(value * _TWO_32) * total) >> 32
        for variant, upper in cumulative:
            if bucket < upper:
                return variant
        return None

    def _table(self, variants: Sequence[tuple[str, float]]) -> tuple[int, tuple[tuple[str, int], ...]]:
        table = self.weights(variants)
        if type(variants) is tuple:
            if len(self._tables) >= _CACHE_LIMIT:
                self._tables.clear()
            self._tables[variants] = table
        return table

    def holdout_value(self, holdout_id: int | str, bucketing_id: str) -> float:
        """``mmh3(cbor([str(holdout_id), bucketing_id, "holdout"])) / 2**32``, in [0, 1)."""
        key = str(holdout_id)
        head = self._triple_prefix.get(key) or self._triple(key)
        return _mmh3_hash(head + self._encoded_id(bucketing_id) + _HOLDOUT_SALT) / _TWO_32

    def in_holdout(self, value: float, exclusion_percentage: float) -> bool:
        """In iff ``value < exclusion_percentage / 100``; 100 or more is everyone, 0 or less is nobody."""
        return exclusion_percentage >= 100 or value < exclusion_percentage / 100


_LONG_SCALE = float(0xFFFFFFFFFFFFFFF)
_sha1 = hashlib.sha1
_from_bytes = int.from_bytes


def _hash01(text: str) -> float:
    """PostHog's hash: the first 15 hex digits (60 bits) of SHA-1, scaled to [0, 1]."""
    try:
        data = text.encode()  # the argument-free call is CPython's fast path
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    # The first 15 hex digits are the top 60 bits of the first 8 bytes: no hex string round trip.
    return (_from_bytes(_sha1(data, usedforsecurity=False).digest()[:8], "big") >> 4) / _LONG_SCALE


class PostHogBucketing:
    """PostHog-compatible bucketing: SHA-1 based, reproduces PostHog SDKs' local evaluation."""

    name = "posthog"

    __slots__ = ()

    def rollout_value(self, flag_key: str, bucketing_id: str) -> float:
        """``hash01(flag_key + "." + bucketing_id)``, in [0, 1]."""
        return _hash01(f"{flag_key}.{bucketing_id}")

    def position(self, text: str) -> float:
        """``hash01(text)``: ``rollout_value`` of ``text = flag_key + "." + bucketing_id``, ``variant_value``
        of that plus ``"variant"`` (for callers that build the text from a prefix worked out once)."""
        return _hash01(text)

    def in_rollout(self, value: float, percentage: float) -> bool:
        """In iff ``value <= percentage / 100`` (PostHog's comparison)."""
        return value <= percentage / 100

    def variant_value(self, flag_key: str, bucketing_id: str) -> float:
        """``hash01(flag_key + "." + bucketing_id + "variant")``, in [0, 1] (1.0, odds 2**-60: no variant)."""
        return _hash01(f"{flag_key}.{bucketing_id}variant")

    def pick_variant(self, value: float, variants: Sequence[tuple[str, float]]) -> str | None:
        """First variant in stored order with ``value <`` the running sum of ``pct / 100``."""
        boundary = 0.0
        for key, pct in variants:
            boundary = boundary + pct / 100
            if value < boundary:
                return key
        return None

    def holdout_value(self, holdout_id: int | str, bucketing_id: str) -> float:
        """``hash01("holdout-" + bucketing_id)``: the holdout id is deliberately unused, as in PostHog."""
        return _hash01(f"holdout-{bucketing_id}")

    def in_holdout(self, value: float, exclusion_percentage: float) -> bool:
        """Percentage clamped to [0, 100]; 100 is everyone, else in iff ``value <= pct / 100``."""
        pct = min(max(float(exclusion_percentage), 0.0), 100.0)
        return pct == 100.0 or value <= pct / 100


_SCHEMES: dict[str, BucketingScheme] = {"murmur3": Murmur3Bucketing(), "posthog": PostHogBucketing()}


def get_scheme(name: object) -> BucketingScheme:
    """The shared scheme instance for ``name`` (one of ``SCHEME_NAMES``); ValueError on anything else (a
    definition's ``"bucketing"`` may be any JSON value)."""
    scheme = _SCHEMES.get(name) if isinstance(name, str) else None
    if scheme is None:
        raise ValueError(f"unknown bucketing scheme {name!r}; expected one of {', '.join(SCHEME_NAMES)}")
    return scheme

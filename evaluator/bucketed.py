"""Runners of flags that are one rollout or one variant split: the commonest hashed shapes.

Each scheme's runner works out at compile time what does not depend on the id: the hash input's prefix,
the rollout threshold, the variants' cumulative weights or boundaries, each with its Decision. They answer
exactly as ``BucketingScheme.in_rollout(rollout_value(...))`` and ``pick_variant(variant_value(...))`` do
(hypothesis properties in ``tests/evaluator/test_run_paths.py``); ``Rollout`` and ``Split`` are those calls
for any other scheme.
"""

from __future__ import annotations

from typing import Any

from evaluator.bucketing import BucketingScheme, Murmur3Bucketing, PostHogBucketing
from evaluator.model import Context, Decision
from evaluator.steps import Runner

__all__ = ["rollout_runner", "split_runner"]


def rollout_runner(
    key: str, scheme: BucketingScheme, pct: float, outcome: Decision, out_of_rollout: Decision
) -> Runner:
    """The runner of a flag that is one rollout below 100 % and no filters."""
    if isinstance(scheme, Murmur3Bucketing):
        return _Murmur3Rollout(key, scheme, pct, outcome, out_of_rollout)
    if isinstance(scheme, PostHogBucketing):
        return _PostHogRollout(key, scheme, pct, outcome, out_of_rollout)
    return Rollout(key, scheme, pct, outcome, out_of_rollout)


def split_runner(
    key: str,
    scheme: BucketingScheme,
    variants: tuple[tuple[str, float], ...],
    outcome: dict[str | None, Decision],
) -> Runner:
    """The runner of a flag that is one variant split for everyone (``outcome``: the Decision by variant)."""
    if isinstance(scheme, Murmur3Bucketing):
        return _Murmur3Split(key, scheme, variants, outcome)
    if isinstance(scheme, PostHogBucketing):
        return _PostHogSplit(key, scheme, variants, outcome)
    return Split(key, scheme, variants, outcome)


class Rollout(Runner):
    """Any scheme: ``in_rollout(rollout_value(key, id), pct)``."""

    __slots__ = ("out_of_rollout", "outcome", "pct", "scheme")

    def __init__(
        self, key: str, scheme: BucketingScheme, pct: float, outcome: Decision, out_of_rollout: Decision
    ) -> None:
        super().__init__(key)
        self.scheme = scheme
        self.pct = pct
        self.outcome = outcome
        self.out_of_rollout = out_of_rollout

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        scheme = self.scheme
        inside = scheme.in_rollout(scheme.rollout_value(self.key, uid), self.pct)
        return self.outcome if inside else self.out_of_rollout


class _Murmur3Rollout(Rollout):
    """On the hash itself: ``h / 2**32 < pct / 100`` iff ``h < (pct / 100) * 2**32`` exactly (both sides only
    scaled by a power of two), and ``pct`` is below 100 here (a full rollout compiles to no rollout)."""

    __slots__ = ("head", "limit", "murmur3")

    def __init__(
        self, key: str, scheme: Murmur3Bucketing, pct: float, outcome: Decision, out_of_rollout: Decision
    ) -> None:
        super().__init__(key, scheme, pct, outcome, out_of_rollout)
        self.murmur3 = scheme
        self.head = scheme.rollout_head(key)
        self.limit = (pct / 100) * 4294967296.0

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        if float(self.murmur3.rollout_hash(self.head, uid)) < self.limit:
            return self.outcome
        return self.out_of_rollout


class _PostHogRollout(Rollout):
    """The text's prefix and the threshold worked out once: in iff ``hash01(key + "." + id) <= pct / 100``."""

    __slots__ = ("head", "limit", "posthog")

    def __init__(
        self, key: str, scheme: PostHogBucketing, pct: float, outcome: Decision, out_of_rollout: Decision
    ) -> None:
        super().__init__(key, scheme, pct, outcome, out_of_rollout)
        self.posthog = scheme
        self.head = f"{key}."
        self.limit = pct / 100

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        if self.posthog.position(self.head + uid) <= self.limit:
            return self.outcome
        return self.out_of_rollout


class Split(Runner):
    """Any scheme: the Decision of ``pick_variant(variant_value(key, id), variants)``."""

    __slots__ = ("nobody", "outcome", "scheme", "variants")

    def __init__(
        self,
        key: str,
        scheme: BucketingScheme,
        variants: tuple[tuple[str, float], ...],
        outcome: dict[str | None, Decision],
    ) -> None:
        super().__init__(key)
        self.scheme = scheme
        self.variants = variants
        self.outcome = outcome
        self.nobody = outcome[None]

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        scheme = self.scheme
        return self.outcome[scheme.pick_variant(scheme.variant_value(self.key, uid), self.variants)]


class _Murmur3Split(Split):
    """On the hash itself, over the variants' cumulative weights with each one's Decision beside it;
    ``bucket < total`` always, so the last variant with a weight catches everyone past the others."""

    __slots__ = ("head", "murmur3", "table", "total")

    def __init__(
        self,
        key: str,
        scheme: Murmur3Bucketing,
        variants: tuple[tuple[str, float], ...],
        outcome: dict[str | None, Decision],
    ) -> None:
        super().__init__(key, scheme, variants, outcome)
        self.murmur3 = scheme
        self.head = scheme.variant_head(key)
        total, cumulative = scheme.weights(variants)
        self.total = total
        self.table = tuple((upper, outcome[name]) for name, upper in cumulative)

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        total = self.total
        if total <= 0:
            return self.nobody
        bucket = (self.murmur3.variant_hash_from(self.head, uid) * total) >> 32
        for upper, decision in self.table:
            if bucket < upper:
                return decision
        return self.nobody


class _PostHogSplit(Split):
    """The running boundaries added up once, in stored order and by the same additions (so the same floats)
    as ``PostHogBucketing.pick_variant``: the first variant whose boundary is above the position."""

    __slots__ = ("head", "posthog", "table")

    def __init__(
        self,
        key: str,
        scheme: PostHogBucketing,
        variants: tuple[tuple[str, float], ...],
        outcome: dict[str | None, Decision],
    ) -> None:
        super().__init__(key, scheme, variants, outcome)
        self.posthog = scheme
        self.head = f"{key}."
        table: list[tuple[float, Decision]] = []
        boundary = 0.0
        for name, pct in variants:
            boundary = boundary + pct / 100
            table.append((boundary, outcome[name]))
        self.table = tuple(table)

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        value = self.posthog.position(self.head + uid + "variant")
        for boundary, decision in self.table:
            if value < boundary:
                return decision
        return self.nobody

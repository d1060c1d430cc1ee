"""What a snapshot evaluates: one ``Runner`` per request-dependent flag, linked in evaluation order.

Runners are small classes with final shapes: compiled, ``decide`` is a direct C call and their fields are
struct reads. ``runner.build_run`` picks a flag's runner when it compiles.
"""

from __future__ import annotations

from typing import Any

from evaluator.model import Context, Decision

__all__ = ["Runner", "Step", "link"]


class Runner:
    """How one flag evaluates. ``decide`` is the hot path: the snapshot reads the person's properties and
    distinct id once per request and hands them to every flag; calling the runner like a ``Run`` reads
    them itself (flag dependencies, ``Snapshot.evaluate(keys=...)``). Compiled, ``decide`` is a C call."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def decide(self, ctx: Context, props: dict[str, Any], uid: str, memo: dict[str, Decision]) -> Decision:
        raise NotImplementedError

    def __call__(self, ctx: Context, memo: dict[str, Decision]) -> Decision:
        return self.decide(ctx, ctx.person_properties, ctx.distinct_id, memo)


class Step:
    """A snapshot's runners in evaluation order, linked: compiled, walking the links reads typed fields,
    where walking a tuple would check each item's type (a subclass of ``Runner``: a subtype walk a flag)."""

    __slots__ = ("after", "run")

    def __init__(self, run: Runner, after: Step | None) -> None:
        self.run = run
        self.after = after


def link(runners: list[Runner]) -> Step | None:
    """The runners linked in their order (None for none)."""
    first: Step | None = None
    for run in reversed(runners):
        first = Step(run, first)
    return first

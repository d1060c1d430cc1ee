"""The evaluator's data model: what goes in (``Context``), what comes out (``Decision``), what is wrong
(``Issue``).

All three are frozen msgspec Structs. Decisions are built once per possible outcome when a flag compiles and
are shared between requests, so nothing here may ever be mutated.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

__all__ = [
    "DESCRIPTIONS",
    "REASON_PRIORITY",
    "Context",
    "Decision",
    "Issue",
]

# PostHog reason codes, highest priority first: when no condition matches, the reported reason is the
# highest-priority one any condition produced.
REASON_PRIORITY: Final[tuple[str, ...]] = (
    "super_condition_value",
    "holdout_condition_value",
    "condition_match",
    "no_group_type",
    "out_of_rollout_bound",
    "no_condition_match",
    "flag_disabled",
    "missing_dependency",
)

DESCRIPTIONS: Final[dict[str, str]] = {
    "super_condition_value": "Super condition value",
    "holdout_condition_value": "Holdout condition value",
    "no_group_type": "No group type",
    "out_of_rollout_bound": "Out of rollout bound",
    "no_condition_match": "No matching condition set",
    "flag_disabled": "Feature flag is disabled",
    "missing_dependency": "Flag dependency is missing or circular",
}


class Context(msgspec.Struct, frozen=True):
    """Who is asking: the distinct id and everything the request (or a property store) knows about them.

    ``cohort_ids`` carries cohorts resolved outside the evaluator (real-time cohorts); a cohort filter on an
    id that is neither a property cohort nor a static cohort matches iff the id is in this set.
    ``device_id`` is the bucketing id of flags whose ``bucketing_identifier`` is ``"device_id"``.
    ``behaviour`` holds the counts the person store answered, by ``BehaviourQuery.key``
    (``evaluator/behaviour.py``); ``None`` means nothing was read.
    """

    distinct_id: str
    person_properties: dict[str, Any] = {}
    groups: dict[str, str] = {}
    group_properties: dict[str, dict[str, Any]] = {}
    cohort_ids: frozenset[str] = frozenset()
    device_id: str | None = None
    behaviour: dict[str, int] | None = None


class Decision(msgspec.Struct, frozen=True, gc=False):
    """One flag's answer for one context.

    ``value`` is the variant when there is one, else ``enabled``. ``error`` is None, or an error code when
    the flag could not be evaluated (then ``enabled`` is False): ``invalid_definition`` (the definition is
    broken), ``missing_dependency`` (a dependency is missing, broken or circular), ``evaluation_error``
    (an unexpected failure while evaluating; never seen in a correct build, but never a 500 either),
    ``store_unavailable`` (a behavioural count it needed is missing from ``Context.behaviour``).
    """

    key: str
    enabled: bool
    variant: str | None
    payload: str | None  # raw JSON text, as stored in ``filters.payloads``
    reason: str
    condition_index: int | None
    description: str
    error: str | None
    flag_id: int | None
    version: int | None
    value: bool | str


class Issue(msgspec.Struct, frozen=True):
    """One thing wrong with a definition: where (``filters.groups[0].properties[1].operator``) and what."""

    path: str
    message: str

"""Validation for the admin API: every issue in a flag or cohort definition, each with its field path.

It runs the very compile step nodes run (so what validates is what evaluates) plus the checks only an
editor needs: key format, field types, cohort ids that do not exist, dependencies on flags that do not
exist or that would close a cycle (checked against ``others``, the project's other live flags).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from evaluator.bucketing import SCHEME_NAMES
from evaluator.cohorts import compile_group
from evaluator.filters import CohortEntry, DependencyTarget, FilterContext
from evaluator.issues import Problems
from evaluator.model import Issue
from evaluator.operators import Clock
from evaluator.snapshot import compile_flags

KEY_FORMAT: Final = re.compile(r"[A-Za-z0-9_.-]{1,400}")
_BOOLEAN_FIELDS: Final = ("active", "deleted", "ensure_experience_continuity")


def validate_flag(
    flag: Mapping[str, Any],
    *,
    others: Iterable[Mapping[str, Any]] = (),
    cohort_ids: Collection[str] = (),
    group_type_mapping: Mapping[str, str] | None = None,
) -> list[Issue]:
    """Every issue in ``flag``, paths relative to the flag (``filters.groups[0].properties[1].operator``);
    empty when it is valid. ``others`` are the project's other live flags, ``cohort_ids`` its cohorts."""
    if not isinstance(flag, Mapping):
        return [Issue("", "flag must be an object")]  # type: ignore[unreachable]
    issues: list[Issue] = []
    key = flag.get("key")
    if not isinstance(key, str) or not KEY_FORMAT.fullmatch(key):
        issues.append(Issue("key", "must be 1-400 characters of letters, digits, '_', '-' or '.'"))
        key = "\x00flag being validated"
    issues.extend(
        Issue(field, "must be true or false")
        for field in _BOOLEAN_FIELDS
        if field in flag and not isinstance(flag[field], bool)
    )
    bucketing = flag.get("bucketing")
    if bucketing is not None and bucketing not in SCHEME_NAMES:
        issues.append(Issue("bucketing", f"must be one of {', '.join(SCHEME_NAMES)}"))
    if "filters" in flag and not isinstance(flag["filters"], dict):
        return [*issues, Issue("filters", "must be an object")]
    known = {str(c) for c in cohort_ids}
    issues.extend(_unknown_cohorts(flag.get("filters") or {}, known))
    own_id = flag.get("id")
    peers = [
        dict(o)
        for o in others
        if isinstance(o, Mapping)
        and o.get("key") != key
        and (own_id is None or o.get("id") != own_id)
        and not o.get("deleted")
    ]
    candidate = {**flag, "key": key, "active": True, "deleted": False}
    if bucketing not in SCHEME_NAMES:
        candidate.pop("bucketing", None)
    snapshot = compile_flags(
        [*peers, candidate],
        group_type_mapping=group_type_mapping or {},
        static_cohorts={cid: frozenset() for cid in known},
    )
    issues.extend(snapshot.issues(key))
    return _unique(issues)


def _unknown_cohorts(filters: Any, known: set[str]) -> list[Issue]:
    found: list[Issue] = []
    groups = filters.get("groups") if isinstance(filters, dict) else None
    for i, condition in enumerate(groups if isinstance(groups, list) else ()):
        props = condition.get("properties") if isinstance(condition, dict) else None
        for j, item in enumerate(props if isinstance(props, list) else ()):
            if (
                isinstance(item, dict)
                and item.get("type") == "cohort"
                and str(item.get("value")) not in known
            ):
                found.append(
                    Issue(
                        f"filters.groups[{i}].properties[{j}].value",
                        f"cohort {item.get('value')!r} does not exist",
                    )
                )
    return found


def _unique(issues: list[Issue]) -> list[Issue]:
    seen: set[Issue] = set()
    return [i for i in issues if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


class _CohortScope:
    """Validating a cohort on its own: other cohorts are known by id only, flags are not allowed."""

    __slots__ = ("clock", "group_type_mapping", "known", "property_matching_version")

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.property_matching_version = 1
        self.group_type_mapping: Mapping[str, str] = {}
        self.clock: Clock = lambda: 0.0

    def cohort(self, cohort_id: str, problems: Problems, path: str) -> CohortEntry:
        if cohort_id not in self.known:
            problems.error(path, f"cohort {cohort_id!r} does not exist")
        return CohortEntry(False, True, frozenset({cohort_id}))

    def dependency(self, ref: Any, problems: Problems, path: str) -> DependencyTarget | None:
        problems.error(path, "flag dependencies are not supported inside cohorts")
        return None


def validate_cohort(
    cohort_filters: Mapping[str, Any], *, cohort_ids: Collection[str] = (), path: str = "filters"
) -> list[Issue]:
    """Every issue in a cohort's filters: ``{"properties": {"type": "AND"|"OR", "values": [...]}}`` (the
    property group itself is accepted too). Paths start with ``path``."""
    if not isinstance(cohort_filters, Mapping):
        return [Issue(path, "must be an object")]  # type: ignore[unreachable]
    if "properties" in cohort_filters:
        group, group_path = cohort_filters["properties"], f"{path}.properties"
    elif "values" in cohort_filters or "type" in cohort_filters:
        group, group_path = dict(cohort_filters), path
    else:
        return [Issue(f"{path}.properties", "is required")]
    problems = Problems()
    compile_group(
        group, group_path, problems, _CohortScope({str(c) for c in cohort_ids}), FilterContext(None, False)
    )
    return _unique(problems.issues)

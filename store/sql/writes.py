"""The write rules both repositories share, pure (no I/O): normalise, merge and validate admin input.

Every function here either returns clean values or raises ``ValidationFailed`` carrying *every* issue found,
each with the path of the offending field (``key``, ``filters.groups[0].rollout_percentage``, ...), so the
caller can show them all at once and nothing is written. Shape checks (types, unknown fields, key format) run
first; the evaluator's semantic checks (``evaluator.validate_flag`` / ``validate_cohort``: operators,
rollouts, variants, regexes, dependencies, cohorts) run only on well-shaped input, against the project's
other live flags and cohorts as the caller read them inside its write transaction.

Updates have PATCH semantics: only the fields given change; an unknown field is an issue, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

import msgspec

from evaluator import validate_cohort, validate_flag
from evaluator.filter_schema import filter_key_issues
from store.errors import Issue, ValidationFailed
from store.records import Bucketing, CohortRecord, FlagRecord, Scope

__all__ = [
    "COHORT_FIELDS",
    "FLAG_FIELDS",
    "GROUP_TYPE_INDEXES",
    "KEY_PATTERN",
    "MAX_STATIC_MEMBERS",
    "CohortValues",
    "FlagValues",
    "audit_changes",
    "check_cohort",
    "check_flag",
    "check_project_fields",
    "cohort_refs",
    "cohort_values",
    "dependency_closure",
    "flag_dependents",
    "flag_refs",
    "flag_values",
    "validate_api_key_fields",
]

KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9_.-]{1,400}")
MAX_NAME: Final = 400
MAX_DESCRIPTION: Final = 4000
MAX_MEMBER_ID: Final = 400
# Every node keeps every static cohort in memory and rebuilds its set when the cohort changes; larger
# audiences belong in a property cohort (a person property set at ingestion).
MAX_STATIC_MEMBERS: Final = 50_000
BUCKETINGS: Final = ("murmur3", "posthog")
GROUP_TYPE_INDEXES: Final = frozenset({"0", "1", "2", "3", "4"})  # PostHog's five group types, canonical
FLAG_FIELDS: Final = (
    "key",
    "name",
    "filters",
    "active",
    "bucketing",
    "ensure_experience_continuity",
    "bucketing_identifier",
)
BUCKETING_IDENTIFIERS: Final = ("distinct_id", "device_id")
COHORT_FIELDS: Final = ("name", "description", "filters", "is_static", "members")
_json_encoder = msgspec.json.Encoder()


class FlagValues(msgspec.Struct, frozen=True):
    """A flag's writable fields after normalisation."""

    key: str
    name: str
    filters: dict[str, Any]
    active: bool
    bucketing: Bucketing
    ensure_experience_continuity: bool

    def definition(self, *, flag_id: int, project_id: int, version: int) -> dict[str, Any]:
        """The PostHog-shaped definition the evaluator validates (same shape as ``FlagRecord.definition``)."""
        return {
            "id": flag_id,
            "team_id": project_id,
            "key": self.key,
            "name": self.name,
            "active": self.active,
            "deleted": False,
            "filters": self.filters,
            "version": version,
            "bucketing": self.bucketing,
            "ensure_experience_continuity": self.ensure_experience_continuity,
            "bucketing_identifier": self.filters.get("bucketing_identifier"),
        }


class CohortValues(msgspec.Struct, frozen=True):
    """A cohort's writable fields after normalisation; ``members`` is None when unchanged/not given."""

    name: str
    description: str
    filters: dict[str, Any]
    is_static: bool
    members: tuple[str, ...] | None = None


def _start(
    data: Mapping[str, Any], allowed: Collection[str], *, required: str, current: object | None
) -> tuple[list[Issue], Callable[[str, Any], Any]]:
    """The first steps of normalising a create (``current`` None: ``required`` must be given) or a partial
    update of ``current``: input that is not an object is refused at once; the issues so far (unknown fields,
    the missing required one), and ``given(field, default)``: the field as given, else as ``current`` has
    it, else ``default``."""
    if not isinstance(data, Mapping):
        raise ValidationFailed([Issue("", "must be a JSON object")])
    issues = [
        Issue(str(field), f"unknown field (allowed: {', '.join(allowed)})")
        for field in data
        if field not in allowed
    ]
    if current is None and required not in data:
        issues.append(Issue(required, "is required"))

    def given(field: str, default: Any) -> Any:
        if field in data:
            return data[field]
        return getattr(current, field) if current is not None else default

    return issues, given


def _text(value: Any, path: str, issues: list[Issue], *, max_len: int, required: bool = False) -> str:
    if not isinstance(value, str):
        issues.append(Issue(path, "must be a string"))
        return ""
    if required and not value.strip():
        issues.append(Issue(path, "must not be empty"))
    elif len(value) > max_len:
        issues.append(Issue(path, f"must be at most {max_len} characters"))
    return value


def _flag(value: Any, path: str, issues: list[Issue]) -> bool:
    if not isinstance(value, bool):
        issues.append(Issue(path, "must be true or false"))
        return False
    return value


def _object(value: Any, path: str, issues: list[Issue]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        issues.append(Issue(path, "must be a JSON object"))
        return {}
    return dict(value)


def _raise(issues: list[Issue]) -> None:
    if issues:
        raise ValidationFailed(issues)


def _bucketing_identifier(
    data: Mapping[str, Any], filters: dict[str, Any], current: FlagRecord | None, issues: list[Issue]
) -> dict[str, Any]:
    """The flag's top-level ``bucketing_identifier`` (PostHog's field: ``distinct_id``, the default, or
    ``device_id``), kept in ``filters`` -- where PostHog's Python SDK also reads it -- so storing it needs no
    schema change. Given top-level it wins; a PATCH of ``filters`` alone keeps the current one."""
    if "bucketing_identifier" in data:
        identifier = data["bucketing_identifier"]
        path = "bucketing_identifier"
    elif "filters" in data and "bucketing_identifier" in filters:
        identifier = filters["bucketing_identifier"]
        path = "filters.bucketing_identifier"
    else:
        identifier = current.filters.get("bucketing_identifier") if current is not None else None
        path = ""
    if identifier is not None and identifier not in BUCKETING_IDENTIFIERS:
        issues.append(Issue(path, f"must be null or one of {', '.join(BUCKETING_IDENTIFIERS)}"))
        identifier = None
    rest = {k: v for k, v in filters.items() if k != "bucketing_identifier"}
    return {**rest, "bucketing_identifier": identifier} if identifier is not None else rest


def _flag_filters(filters: dict[str, Any], issues: list[Issue]) -> dict[str, Any]:
    """Shape rules the evaluator leaves to the store: only PostHog's keys at every level (new filters only:
    ``filter_key_issues``), ``multivariate`` is an object (or null), and payloads are stored as JSON text
    (PostHog's wire form): a JSON value is encoded, a string must parse as JSON."""
    issues.extend(filter_key_issues(filters))
    multivariate = filters.get("multivariate")
    if multivariate is not None and not isinstance(multivariate, Mapping):
        issues.append(Issue("filters.multivariate", "must be an object with a variants list, or null"))
    payloads = filters.get("payloads")
    if not isinstance(payloads, Mapping):
        return filters  # absent, or not an object: the evaluator reports the latter
    encoded: dict[str, Any] = {}
    for name, value in payloads.items():
        if value is None:
            continue
        if not isinstance(value, str):
            encoded[str(name)] = _json_encoder.encode(value).decode("utf-8")
            continue
        try:
            msgspec.json.decode(value)
        except msgspec.DecodeError:
            issues.append(
                Issue(f"filters.payloads.{name}", "must be valid JSON (e.g. '\"text\"' or '{\"a\": 1}')")
            )
        encoded[str(name)] = value
    return {**filters, "payloads": encoded}


def flag_values(data: Mapping[str, Any], *, current: FlagRecord | None = None) -> FlagValues:
    """Normalise a create (``current`` None: ``key`` required, defaults for the rest) or a partial update."""
    issues, given = _start(data, FLAG_FIELDS, required="key", current=current)
    key = given("key", "")
    if "key" in data:
        if not isinstance(key, str):
            issues.append(Issue("key", "must be a string"))
        elif not KEY_PATTERN.fullmatch(key):
            issues.append(Issue("key", "must be 1-400 characters of letters, digits, '_', '.' or '-'"))
    name = _text(given("name", ""), "name", issues, max_len=MAX_NAME)
    filters = _object(given("filters", {}), "filters", issues)
    if "filters" in data:
        filters = _flag_filters(filters, issues)
    filters = _bucketing_identifier(data, filters, current, issues)
    active = _flag(given("active", True), "active", issues)
    bucketing = given("bucketing", "murmur3")
    if bucketing not in BUCKETINGS:
        issues.append(Issue("bucketing", f"must be one of {', '.join(BUCKETINGS)}"))
    continuity = _flag(given("ensure_experience_continuity", False), "ensure_experience_continuity", issues)
    _raise(issues)
    return FlagValues(
        key=key,
        name=name,
        filters=filters,
        active=active,
        bucketing=bucketing,
        ensure_experience_continuity=continuity,
    )


def check_flag(
    values: FlagValues,
    *,
    flag_id: int,
    project_id: int,
    others: Iterable[FlagRecord],
    cohort_ids: Collection[str],
    group_type_mapping: Mapping[str, str],
) -> None:
    """The evaluator's semantic checks, against the project's other live flags (``flag_id`` 0: a new flag)."""
    definition = values.definition(flag_id=flag_id, project_id=project_id, version=1)
    peers = [f for f in others if f.id != flag_id and not f.deleted]
    other_defs = [f.definition() for f in dependency_closure(values.filters, peers)]
    issues = validate_flag(
        definition, others=other_defs, cohort_ids=cohort_ids, group_type_mapping=group_type_mapping
    )
    _raise(list(issues))


def flag_refs(filters: Any) -> list[str]:
    """The flags (ids or keys, as text) that conditions in these filters depend on."""
    groups = filters.get("groups") if isinstance(filters, Mapping) else None
    refs: list[str] = []
    for condition in groups if isinstance(groups, list) else ():
        props = condition.get("properties") if isinstance(condition, Mapping) else None
        refs.extend(
            str(item.get("key"))
            for item in (props if isinstance(props, list) else ())
            if isinstance(item, Mapping) and item.get("type") == "flag"
        )
    return refs


def cohort_refs(filters: Any) -> set[str]:
    """The cohorts (ids as text) a flag's or a cohort's filters reference, at any depth."""
    found: set[str] = set()
    stack: list[Any] = [filters]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if item.get("type") == "cohort" and item.get("value") is not None:
                found.add(str(item["value"]))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def flag_dependents(flag: FlagRecord, peers: Iterable[FlagRecord], *, by_key_only: bool = False) -> list[str]:
    """The keys of the live ``peers`` whose conditions depend on ``flag`` (by id or key; ``by_key_only``:
    by key, what a rename breaks)."""
    names = {flag.key} if by_key_only else {flag.key, str(flag.id)}
    return [
        p.key for p in peers if p.id != flag.id and not p.deleted and names.intersection(flag_refs(p.filters))
    ]


def dependency_closure(filters: Mapping[str, Any], peers: Iterable[FlagRecord]) -> list[FlagRecord]:
    """The peers a flag with these filters depends on, directly or not (by id or key), in peer order.

    Validation only needs these: a missing target or a cycle through the flag lies within its closure. It
    keeps a write's validation proportional to the flag's dependencies, not to the project's size.
    """
    listed = list(peers)
    by_ref: dict[str, list[FlagRecord]] = {}
    for peer in listed:
        by_ref.setdefault(str(peer.id), []).append(peer)
        by_ref.setdefault(peer.key, []).append(peer)
    seen: set[int] = set()
    pending = flag_refs(filters)
    while pending:
        for peer in by_ref.get(pending.pop(), ()):
            if peer.id not in seen:
                seen.add(peer.id)
                pending.extend(flag_refs(peer.filters))
    return [p for p in listed if p.id in seen]


def _members(value: Any, issues: list[Issue]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        issues.append(Issue("members", "must be a list of distinct ids"))
        return ()
    if len(value) > MAX_STATIC_MEMBERS:
        issues.append(Issue("members", f"a static cohort holds at most {MAX_STATIC_MEMBERS} members"))
        return ()
    out: dict[str, None] = {}
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, str | int):
            issues.append(Issue(f"members[{i}]", "must be a string (or integer) distinct id"))
            continue
        text = str(item)
        if not text or len(text) > MAX_MEMBER_ID:
            issues.append(Issue(f"members[{i}]", f"must be 1-{MAX_MEMBER_ID} characters"))
            continue
        out[text] = None
    return tuple(out)


def cohort_values(data: Mapping[str, Any], *, current: CohortRecord | None = None) -> CohortValues:
    """Normalise a cohort create (``name`` required) or partial update; ``is_static`` is fixed at creation."""
    issues, given = _start(data, COHORT_FIELDS, required="name", current=current)
    name = _text(given("name", ""), "name", issues, max_len=MAX_NAME, required="name" in data)
    description = _text(given("description", ""), "description", issues, max_len=MAX_DESCRIPTION)
    filters = _object(given("filters", {}), "filters", issues)
    is_static = _flag(given("is_static", False), "is_static", issues)
    if current is not None and "is_static" in data and is_static != current.is_static:
        issues.append(Issue("is_static", "cannot change after creation"))
    members: tuple[str, ...] | None = None
    if "members" in data:
        if is_static:
            members = _members(data["members"], issues)
        else:
            issues.append(Issue("members", "only static cohorts have members"))
    elif current is None and is_static:
        members = ()
    _raise(issues)
    return CohortValues(
        name=name, description=description, filters=filters, is_static=is_static, members=members
    )


def check_cohort(values: CohortValues, *, cohort_id: int, cohort_ids: Collection[str]) -> None:
    """The evaluator's checks of a property cohort's filters (static cohorts carry no filters to check)."""
    if values.is_static:
        return
    others = [c for c in cohort_ids if c != str(cohort_id)]
    _raise(list(validate_cohort(values.filters, cohort_ids=others, path="filters")))


def check_project_fields(
    *, name: str | None = None, group_type_mapping: object = None, property_matching_version: object = None
) -> dict[str, str] | None:
    """Check a project name, group type mapping (``{"0": "company"}``: indexes 0-4, unique names) and/or
    property matching version (1 or 2)."""
    issues: list[Issue] = []
    if property_matching_version is not None and (
        isinstance(property_matching_version, bool) or property_matching_version not in (1, 2)
    ):
        issues.append(Issue("property_matching_version", "must be 1 or 2"))
    if name is not None:
        _text(name, "name", issues, max_len=200, required=True)
    mapping: dict[str, str] | None = None
    if group_type_mapping is not None:
        if not isinstance(group_type_mapping, Mapping):
            issues.append(Issue("group_type_mapping", "must be a JSON object"))
        else:
            mapping = {}
            for index, group_type in group_type_mapping.items():
                path = f"group_type_mapping.{index}"
                if index not in GROUP_TYPE_INDEXES:
                    issues.append(Issue(path, "group type index must be '0' to '4'"))
                elif not isinstance(group_type, str) or not group_type.strip() or len(group_type) > 200:
                    issues.append(Issue(path, "group type must be a non-empty string"))
                elif group_type in mapping.values():
                    issues.append(Issue(path, f"group type {group_type!r} is mapped twice"))
                else:
                    mapping[index] = group_type
    _raise(issues)
    return mapping


def audit_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The fields an audited write changed, PostHog activity-log style: ``[{"field", "before", "after"}]``,
    sorted by field (a create lists every field of ``after``, a hard removal every field of ``before``)."""
    old, new = before or {}, after or {}
    return [
        {"field": field, "before": old.get(field), "after": new.get(field)}
        for field in sorted(old.keys() | new.keys())
        if old.get(field) != new.get(field) or (field in old) != (field in new)
    ]


def validate_api_key_fields(*, label: str, scope: Scope) -> None:
    """A key's label (at most 200 characters) and scope (``read`` or ``write``)."""
    issues: list[Issue] = []
    _text(label, "label", issues, max_len=200)
    if scope not in ("read", "write"):
        issues.append(Issue("scope", "must be 'read' or 'write'"))
    _raise(issues)

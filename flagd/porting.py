"""Import and export flags as PostHog flag JSON.

Accepted input: a list of flags, or an object with ``"flags": [...]`` (as served by PostHog's
``/api/feature_flag/local_evaluation`` and by ``flagd export``), optionally with ``"cohorts": {id: filters}``
and ``"group_type_mapping"``. Deleted flags are skipped. Imported flags keep ``"bucketing": "posthog"``
unless they say otherwise, so every user stays in the bucket PostHog gave them.

Ids are the source system's: an imported flag depending on another imported flag by id is rewritten to
depend on it by key, and cohort references are rewritten to the cohorts created by the import. Flags are
written in dependency order; a flag whose key exists already is updated instead of duplicated. Group types
the project does not have yet are added from the document's ``group_type_mapping``.

An import is all-or-nothing by default: ``check_import`` first validates the whole document against the
project as it would be afterwards (every flag, cohort and group type, each issue with its path) and nothing
is written unless all of it is valid. ``partial=True`` (``flagd import --partial``) writes what is valid and
reports the rest.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from evaluator import compile_flags, validate_cohort
from store.errors import Conflict, Issue, NotFound, ValidationFailed
from store.records import CohortRecord, FlagRecord, Page
from store.sql import writes
from store.sql.repository import AdminRepository

_R = TypeVar("_R", FlagRecord, CohortRecord)
FLAG_FIELDS = writes.FLAG_FIELDS  # what an imported flag may set: exactly what the write path takes


class ImportFormatError(ValueError):
    """The document is not PostHog flag JSON; the message says where."""


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # deleted in the source
    cohorts_created: int = 0
    group_types_added: dict[str, str] = field(default_factory=dict)
    failed: dict[str, list[Issue]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class FlagDocument:
    flags: list[dict[str, Any]]
    cohorts: dict[str, dict[str, Any]]
    group_type_mapping: dict[str, str]


def parse_document(raw: bytes | str) -> FlagDocument:
    """Parse PostHog flag JSON (see the module docstring); ``ImportFormatError`` names what is wrong."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ImportFormatError(f"not JSON: {exc}") from None
    cohorts: Any = {}
    mapping: Any = {}
    if isinstance(data, dict):
        if "flags" not in data:
            raise ImportFormatError('expected a list of flags or an object with "flags"')
        flags, cohorts, mapping = (
            data["flags"],
            data.get("cohorts") or {},
            data.get("group_type_mapping") or {},
        )
    else:
        flags = data
    if not isinstance(flags, list):
        raise ImportFormatError('"flags" must be a list')
    for index, flag in enumerate(flags):
        if not isinstance(flag, dict):
            raise ImportFormatError(f"flags[{index}]: expected an object")
        if not isinstance(flag.get("key"), str):
            raise ImportFormatError(f"flags[{index}].key: expected a string")
    if not isinstance(cohorts, dict) or not all(isinstance(v, dict) for v in cohorts.values()):
        raise ImportFormatError('"cohorts" must map cohort ids to filter objects')
    if not isinstance(mapping, dict):
        raise ImportFormatError('"group_type_mapping" must be an object')
    return FlagDocument(
        flags=flags,
        cohorts={str(k): v for k, v in cohorts.items()},
        group_type_mapping={str(k): str(v) for k, v in mapping.items()},
    )


def flag_input(flag: Mapping[str, Any]) -> dict[str, Any]:
    """The fields flagd stores, from a PostHog flag (PostHog bucketing unless the flag names another)."""
    data = {name: copy.deepcopy(flag[name]) for name in FLAG_FIELDS if name in flag}
    data.setdefault("bucketing", "posthog")
    data.setdefault("name", "")
    return data


def _filters_of(filters: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every property filter in a flag's conditions with its path; malformed parts are skipped (validation
    reports them)."""
    groups = filters.get("groups") if isinstance(filters, dict) else None
    found: list[tuple[str, dict[str, Any]]] = []
    for i, group in enumerate(groups if isinstance(groups, list) else ()):
        props = group.get("properties") if isinstance(group, dict) else None
        found.extend(
            (f"filters.groups[{i}].properties[{j}]", prop)
            for j, prop in enumerate(props if isinstance(props, list) else ())
            if isinstance(prop, dict)
        )
    return found


def _dependencies(filters: Any) -> list[str]:
    return [str(prop.get("key")) for _, prop in _filters_of(filters) if prop.get("type") == "flag"]


def _rewrite(filters: Any, flag_ids: Mapping[str, str], cohort_ids: Mapping[str, int]) -> Any:
    """Source ids → this project's references: flag dependencies by key, cohorts by their new id."""
    filters = copy.deepcopy(filters)
    for _, prop in _filters_of(filters):
        if prop.get("type") == "flag" and str(prop.get("key")) in flag_ids:
            prop["key"] = flag_ids[str(prop["key"])]
        elif prop.get("type") == "cohort" and str(prop.get("value")) in cohort_ids:
            prop["value"] = cohort_ids[str(prop["value"])]
    return filters


def _ordered(flags: Sequence[dict[str, Any]], flag_ids: Mapping[str, str]) -> list[dict[str, Any]]:
    """Dependencies first (a cycle keeps input order: the repository then reports it)."""
    by_key = {f["key"]: f for f in flags}
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []

    def visit(flag: dict[str, Any], path: frozenset[str]) -> None:
        key = flag["key"]
        if key in done or key in path:
            return
        for dep in _dependencies(flag.get("filters")):
            target = by_key.get(flag_ids.get(dep, dep))
            if target is not None:
                visit(target, path | {key})
        done.add(key)
        ordered.append(flag)

    for flag in flags:
        visit(flag, frozenset())
    return ordered


async def _all_pages(list_page: Callable[..., Awaitable[Page[_R]]]) -> list[_R]:
    """Every item of a paged listing (``list_page(limit=, offset=)``), page by page."""
    found: list[_R] = []
    while True:
        page = await list_page(limit=500, offset=len(found))
        found.extend(page.items)
        if not page.items or len(found) >= page.total:
            return found


def _cohort_refs(filters: Any) -> list[tuple[str, Any]]:
    return [
        (f"{path}.value", prop.get("value"))
        for path, prop in _filters_of(filters)
        if prop.get("type") == "cohort"
    ]


async def check_import(
    repository: AdminRepository, project_id: int, document: FlagDocument
) -> dict[str, list[Issue]]:
    """Every issue the import of ``document`` would hit, by flag key (``cohorts.<id>`` for a cohort,
    ``group_type_mapping`` for the group types), each with its field path; empty when all of it is valid.
    Writes nothing. Flags are validated together, against the project's flags as they would be after."""
    failed: dict[str, list[Issue]] = {}
    project = await repository.get_project(project_id)
    mapping = {**document.group_type_mapping, **project.group_type_mapping}
    try:
        writes.check_project_fields(group_type_mapping=mapping)
    except ValidationFailed as exc:
        failed["group_type_mapping"] = exc.issues
    cohorts = await _all_pages(partial(repository.list_cohorts, project_id))
    cohort_ids = {str(c.id) for c in cohorts if not c.deleted}
    cohort_ids |= set(document.cohorts)  # imported cohorts are referenced by their source ids here
    for source_id, body in document.cohorts.items():
        issues = validate_cohort(
            body if "properties" in body else {"properties": body}, cohort_ids=cohort_ids
        )
        if issues:
            failed[f"cohorts.{source_id}"] = issues
    flags = await _all_pages(partial(repository.list_flags, project_id))
    existing = {f.key: f for f in flags if not f.deleted}
    live = [f for f in document.flags if not f.get("deleted")]
    flag_ids = {str(f["id"]): f["key"] for f in live if "id" in f}
    definitions: dict[str, dict[str, Any]] = {}
    for index, flag in enumerate(live):
        data = flag_input(flag)
        key = data["key"]
        if key in definitions:
            failed.setdefault(key, []).append(Issue("key", f"flags[{index}] repeats the key {key!r}"))
            continue
        if "filters" in data:
            data["filters"] = _rewrite(data["filters"], flag_ids, {})
        current = existing.get(key)
        try:
            values = writes.flag_values(
                data if current is None else {k: v for k, v in data.items() if k != "key"}, current=current
            )
        except ValidationFailed as exc:
            failed[key] = exc.issues
            continue
        flag_id = current.id if current is not None else -1 - index  # not a stored id: never referenced
        definitions[key] = values.definition(flag_id=flag_id, project_id=project_id, version=1)
        failed.setdefault(key, []).extend(
            Issue(path, f"cohort {value!r} does not exist")
            for path, value in _cohort_refs(values.filters)
            if str(value) not in cohort_ids
        )
    kept = [f.definition() for key, f in existing.items() if key not in definitions]
    snapshot = compile_flags(
        [*kept, *definitions.values()],
        group_type_mapping=mapping,
        static_cohorts={cid: frozenset() for cid in cohort_ids},
    )
    for key in definitions:
        failed.setdefault(key, []).extend(snapshot.issues(key))
    return {key: issues for key, issues in failed.items() if issues}


async def import_flags(
    repository: AdminRepository,
    project_id: int,
    document: FlagDocument,
    *,
    actor: str,
    partial: bool = False,
) -> ImportReport:
    """Create or update every live flag of ``document`` in the project. Unless ``partial``, nothing is
    written when any part of it is invalid (``report.failed`` lists every issue); with ``partial``, what is
    valid is written and failures are reported per flag."""
    report = ImportReport()
    live = [f for f in document.flags if not f.get("deleted")]
    report.skipped = [f["key"] for f in document.flags if f.get("deleted")]
    if not partial:
        report.failed = await check_import(repository, project_id, document)
        if report.failed:
            return report
    flag_ids = {str(f["id"]): f["key"] for f in live if "id" in f}
    await _merge_group_types(repository, project_id, document.group_type_mapping, actor=actor, report=report)
    cohort_ids: dict[str, int] = {}
    for source_id, body in document.cohorts.items():
        filters = body if "properties" in body else {"properties": body}
        cohort = await repository.create_cohort(
            project_id, {"name": f"imported cohort {source_id}", "filters": filters}, actor=actor
        )
        cohort_ids[source_id] = cohort.id
        report.cohorts_created += 1
    for flag in _ordered(live, flag_ids):
        data = flag_input(flag)
        if "filters" in data:
            data["filters"] = _rewrite(data["filters"], flag_ids, cohort_ids)
        key = data["key"]
        try:
            try:
                existing = await repository.get_flag_by_key(project_id, key)
            except NotFound:
                await repository.create_flag(project_id, data, actor=actor)
                report.created.append(key)
            else:
                changes = {k: v for k, v in data.items() if k != "key"}
                await repository.update_flag(project_id, existing.id, changes, actor=actor)
                report.updated.append(key)
        except ValidationFailed as exc:
            report.failed[key] = exc.issues
        except (Conflict, NotFound) as exc:
            report.failed[key] = [Issue(path="", message=str(exc))]
    return report


async def _merge_group_types(
    repository: AdminRepository,
    project_id: int,
    mapping: Mapping[str, str],
    *,
    actor: str,
    report: ImportReport,
) -> None:
    """Add the document's group types the project lacks (existing indexes keep their names)."""
    if not mapping:
        return
    current = dict((await repository.get_project(project_id)).group_type_mapping)
    added = {index: name for index, name in mapping.items() if index not in current}
    if added:
        await repository.update_project(project_id, actor=actor, group_type_mapping={**current, **added})
        report.group_types_added = added


async def export_flags(repository: AdminRepository, project_id: int) -> dict[str, Any]:
    """The project's live flags (and the cohorts and group types they use) as PostHog flag JSON."""
    project = await repository.get_project(project_id)
    flags: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await repository.list_flags(project_id, limit=500, offset=offset)
        flags.extend(f.definition() for f in page.items)
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    cohorts: dict[str, Any] = {}
    offset = 0
    while True:
        cpage = await repository.list_cohorts(project_id, limit=500, offset=offset)
        for c in cpage.items:
            if not c.deleted and not c.is_static:
                cohorts[str(c.id)] = c.filters.get("properties", {})
        offset += len(cpage.items)
        if not cpage.items or offset >= cpage.total:
            break
    return {"flags": flags, "group_type_mapping": dict(project.group_type_mapping), "cohorts": cohorts}

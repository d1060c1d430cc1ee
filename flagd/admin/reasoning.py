"""What the admin API and the MCP tools share beyond the repository: flag writes that describe themselves,
the exact what-if, and explain with stored person data.

Every write goes through the repository (one write path: same validation, same audit, same change log);
``dry_run`` runs the same transaction and rolls it back. Each write then evaluates the flag before and
after over the persons seen (``flagd.admin.impact``) and says what changed (``flagd.admin.changes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from evaluator import Context
from flagd.admin.changes import change_summary, describe_fields, direction
from flagd.admin.errors import ApiError, invalid, not_found
from flagd.admin.impact import (
    DEFAULT_LIMIT,
    MAX_DISTINCT_IDS,
    MAX_LIMIT,
    Evaluator,
    Impact,
    Subject,
    population,
)
from flagd.admin.services import AdminServices
from store.catalog import ProjectState
from store.errors import StoreError
from store.records import CohortRecord, FlagRecord


def project_state(services: AdminServices, project_id: int) -> ProjectState:
    """The compiled project this node serves (404 until the project has synced)."""
    state = services.catalog.by_id(project_id)
    if state is None:
        raise not_found(f"project {project_id} is not in the snapshot this node serves (not yet synced)")
    return state


async def find_flag(services: AdminServices, project_id: int, ref: int | str) -> FlagRecord:
    """A live flag by id or key (``NotFound`` otherwise)."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return await services.repository.get_flag(project_id, ref)
    if isinstance(ref, str) and ref.isdigit():
        return await services.repository.get_flag(project_id, int(ref))
    if not isinstance(ref, str) or not ref:
        raise invalid("key", "name the flag by its key or id")
    return await services.repository.get_flag_by_key(project_id, ref)


def check_limit(limit: Any) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    return limit


def check_ids(distinct_ids: Any) -> list[str] | None:
    if distinct_ids is None:
        return None
    if not isinstance(distinct_ids, list) or not all(isinstance(i, str) and i for i in distinct_ids):
        raise invalid("distinct_ids", "must be a list of non-empty strings")
    if len(distinct_ids) > MAX_DISTINCT_IDS:
        raise invalid("distinct_ids", f"at most {MAX_DISTINCT_IDS} ids")
    return list(distinct_ids)


async def measure(
    services: AdminServices,
    before: FlagRecord | None,
    after: FlagRecord,
    *,
    distinct_ids: Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Impact:
    """``before`` and ``after`` evaluated over the persons seen (or ``distinct_ids``)."""
    state = project_state(services, after.project_id)
    people = await population(services.persons, after.project_id, distinct_ids)
    evaluator = Evaluator(state, services.enricher)
    return await evaluator.measure(
        before.definition() if before is not None else None, after.definition(), people, limit
    )


async def described(
    services: AdminServices, before: FlagRecord | None, after: FlagRecord, *, dry_run: bool
) -> dict[str, Any]:
    """A write's result: the flag (as written, or as it would be), and the change in words. The write has
    happened by now: if the persons cannot be counted (person store down, project not yet synced here), the
    result says so instead of failing."""
    try:
        impact = await measure(services, before, after)
    except (StoreError, ApiError) as exc:
        change = {
            "description": f"{describe_fields(before, after)} (who it serves could not be counted: {exc})",
            "direction": None,
            "impact": None,
        }
    else:
        change = change_summary(before, after, impact)
    return {"flag": msgspec.to_builtins(after), "dry_run": dry_run, "change": change}


async def what_if(
    services: AdminServices,
    flag: FlagRecord,
    changes: Mapping[str, Any],
    *,
    actor: str,
    distinct_ids: Sequence[str] | None,
    limit: int,
) -> dict[str, Any]:
    """The flag evaluated as it is and with ``changes`` (validated by a dry-run PATCH: a bad proposal is the
    PATCH's 400), over the persons seen or ``distinct_ids``."""
    proposed = await services.repository.update_flag(
        flag.project_id, flag.id, changes, actor=actor, expected_version=flag.version, dry_run=True
    )
    impact = await measure(services, flag, proposed, distinct_ids=distinct_ids, limit=limit)
    summary = change_summary(flag, proposed, impact)
    return {
        "flag": {"id": flag.id, "key": flag.key, "version": flag.version},
        "proposed": dict(changes),
        "population": impact.population,
        "evaluated": impact.evaluated,
        "turns_on": impact.turns_on,
        "turns_on_count": impact.turns_on_count,
        "turns_off": impact.turns_off,
        "turns_off_count": impact.turns_off_count,
        "variant_changes": msgspec.to_builtins(impact.variant_changes),
        "variant_changed_count": impact.variant_changed_count,
        "reshuffles_variants": impact.variant_changed_count > 0,
        "unchanged": impact.unchanged,
        "served_before": impact.served_before,
        "served_after": impact.served_after,
        "direction": direction(impact),
        "summary": summary["description"],
    }


def _bucket_input(bucketing: str | None, key: str, bucketing_id: str | None) -> str | None:
    if bucketing_id is None:
        return None
    if bucketing == "posthog":
        return f"sha1({key}.{bucketing_id}) -> first 15 hex digits / 0xFFFFFFFFFFFFFFF"
    return f"murmur3_x86_32(CBOR([{key!r}, {bucketing_id!r}, 'rollout']), seed 0) / 2**32"


async def explain(
    services: AdminServices,
    flag: FlagRecord,
    *,
    distinct_id: str,
    person_properties: Mapping[str, Any] | None = None,
    groups: Mapping[str, str] | None = None,
    group_properties: Mapping[str, Mapping[str, Any]] | None = None,
    device_id: str | None = None,
) -> dict[str, Any]:
    """The decision ``/flags`` gives this context and why: the evaluator's trace (conditions, filters,
    bucket values, thresholds), with stored person properties merged under the request's as ``/flags`` does,
    and for every person property a filter read, whether the value came from the request or the store."""
    state = project_state(services, flag.project_id)
    if flag.deleted or flag.key not in state.snapshot:
        raise not_found(
            f"flag {flag.key!r} is not in the snapshot this node serves (deleted, or not yet synced)"
        )
    request_props = dict(person_properties or {})
    ctx = Context(
        distinct_id=distinct_id,
        person_properties=request_props,
        groups=dict(groups or {}),
        group_properties={k: dict(v) for k, v in (group_properties or {}).items()},
        device_id=device_id or None,
    )
    if services.enricher is not None:
        ctx = await services.enricher.enrich(state, ctx, [flag.key])
    trace = state.snapshot.explain(flag.key, ctx)
    used: dict[str, dict[str, Any]] = {}
    for condition in trace.conditions:
        for step in condition.filters:
            if step.kind != "property" or step.source != "person" or step.key in used:
                continue
            origin = "request" if step.key in request_props else "stored" if step.present else "absent"
            used[step.key] = {"key": step.key, "value": step.actual if step.present else None, "from": origin}
    decision = trace.decision
    conditions = [
        {
            **msgspec.to_builtins(c),
            "bucket_input": _bucket_input(trace.bucketing, flag.key, c.bucketing_id)
            if c.bucket_value is not None
            else None,
        }
        for c in trace.conditions
    ]
    return {
        "flag": {"id": flag.id, "key": flag.key, "version": flag.version},
        "snapshot_version": state.version,
        "distinct_id": distinct_id,
        "decision": msgspec.to_builtins(decision) if decision is not None else None,
        "summary": trace.summary,
        "bucketing": trace.bucketing,
        "bucketing_id": trace.bucketing_id,
        "properties_used": list(used.values()),
        "conditions": conditions,
        "variant": msgspec.to_builtins(trace.variant),
        "holdout": msgspec.to_builtins(trace.holdout),
        "issues": msgspec.to_builtins(trace.issues),
    }


__all__ = [
    "Subject",
    "check_ids",
    "check_limit",
    "described",
    "described_cohort",
    "explain",
    "find_flag",
    "measure",
    "project_state",
    "what_if",
]


def described_cohort(cohort: CohortRecord, *, dry_run: bool) -> dict[str, Any]:
    """A cohort write's result: the cohort and the change in words (a cohort serves no one by itself:
    flags that target it do)."""
    verb = "would create" if dry_run else "created"
    kind = "static" if cohort.is_static else "dynamic"
    text = f"{verb} {kind} cohort {cohort.name!r}"
    if cohort.is_static:
        text += f" with {cohort.member_count} members"
    text += ": changes no flag until a flag targets it"
    return {
        "cohort": msgspec.to_builtins(cohort),
        "dry_run": dry_run,
        "change": {"description": text, "direction": "none"},
    }

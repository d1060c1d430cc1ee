"""The node's catalog: every project's compiled flags, held in memory and swapped atomically.

The SDK hot path reads only this. A ``ProjectState`` is immutable and built once per change (compile at load);
``Catalog.install`` replaces one project by rebinding a new dict, so a request that already holds a
``ProjectState`` keeps evaluating against the old flags while the next request sees the new ones: old or
new, never a mix. Whoever follows changes (the Redis subscriber in distributed mode, the embedded backend in
one-process mode) builds states with ``build_project_state`` and installs them here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from evaluator import Snapshot, compile_flags
from evaluator.dependencies import references, resolve
from evaluator.values import stringify
from store.records import ChangeRow


class ProjectData(msgspec.Struct, frozen=True):
    """Everything a node needs to compile one project, as stored in Redis (or read from PostgreSQL)."""

    project_id: int
    api_token: str
    secret_token_hash: str
    group_type_mapping: dict[str, str]
    version: int  # change_log seq of the newest change applied to this project
    flags: list[dict[str, Any]]  # FlagRecord.definition() shapes, deleted ones excluded or marked deleted
    cohorts: list[dict[str, Any]]  # CohortRecord.definition() shapes
    static_members: dict[str, list[str]] = {}  # cohort id -> distinct ids, static cohorts only
    property_matching_version: int = 1  # exact/is_not rule (evaluator/operators.py); published to SDKs


class ProjectState(msgspec.Struct, frozen=True):
    """One project, compiled and ready to serve."""

    project_id: int
    api_token: str
    secret_token_hash: str
    group_type_mapping: dict[str, str]
    version: int
    snapshot: Snapshot
    local_eval_body: bytes  # the pre-encoded /flags/definitions response
    local_eval_etag: str
    installed_at: float  # time.time() when this state was built
    # What it was built from: the next change is applied to this (``apply_changes``) instead of reloading
    # the project, and static cohorts whose member list is the same object keep their frozenset.
    data: ProjectData | None = None
    static: dict[str, frozenset[str]] = {}


_encoder = msgspec.json.Encoder()


def build_project_state(data: ProjectData, previous: ProjectState | None = None) -> ProjectState:
    """Compile a project and pre-encode what SDKs fetch for local evaluation.

    ``previous`` (the state being replaced) lets the compile reuse every flag the change did not touch.

    Only flags an SDK can reproduce go into the local-evaluation body (``Snapshot.sdk_reproducible``):
    PostHog bucketing and no server-only cohorts. Never raises for a broken flag: that flag evaluates to an
    error decision (errors are data on the hot path).
    """
    live = [f for f in data.flags if not f.get("deleted")]
    cohorts = {
        str(c["id"]): c["filters"].get("properties", {})
        for c in data.cohorts
        if not c.get("deleted") and not c.get("is_static")
    }
    before = previous.data.static_members if previous is not None and previous.data is not None else {}
    static = {
        cid: previous.static[cid]
        if previous is not None and before.get(cid) is ids and cid in previous.static
        else frozenset(ids)
        for cid, ids in data.static_members.items()
    }
    snapshot = compile_flags(
        live,
        cohorts=cohorts,
        group_type_mapping=data.group_type_mapping,
        static_cohorts=static,
        previous=previous.snapshot if previous is not None else None,
        property_matching_version=data.property_matching_version,
    )
    local_flags = sdk_definitions(live, snapshot)
    used = snapshot.cohorts_used_by(snapshot.sdk_reproducible)
    used_cohorts = {cid: portable_filters(body) for cid, body in cohorts.items() if cid in used}
    body = _encoder.encode(
        {
            "flags": local_flags,
            "group_type_mapping": data.group_type_mapping,
            "cohorts": used_cohorts,
            # SDKs evaluate exact/is_not with the version they are told (absent = 1): the one flagd uses.
            "property_matching_version": snapshot.property_matching_version,
        }
    )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return ProjectState(
        project_id=data.project_id,
        api_token=data.api_token,
        secret_token_hash=data.secret_token_hash,
        group_type_mapping=dict(data.group_type_mapping),
        version=data.version,
        snapshot=snapshot,
        local_eval_body=body,
        local_eval_etag=etag,
        installed_at=time.time(),
        data=data,
        static=static,
    )


def apply_changes(data: ProjectData, changes: Iterable[ChangeRow]) -> ProjectData:
    """``data`` with ``changes`` (change_log rows of this project, any order) applied: what the project holds
    after them, without reading the rest of it again. Rows at or below ``data.version`` are already in it.
    Unchanged flags, cohorts and static member lists are the same objects as in ``data``."""
    flags = {f["id"]: f for f in data.flags}
    cohorts = {c["id"]: c for c in data.cohorts}
    members = dict(data.static_members)
    api_token, secret, mapping, version, matching = (
        data.api_token,
        data.secret_token_hash,
        data.group_type_mapping,
        data.version,
        data.property_matching_version,
    )
    for change in sorted(changes, key=lambda c: c.seq):
        if change.seq <= data.version or change.project_id != data.project_id:
            continue
        version = max(version, change.seq)
        payload, gone = change.payload, change.op == "delete" or bool(change.payload.get("deleted"))
        if change.entity_type == "flag":
            if gone:
                flags.pop(change.entity_id, None)
            else:
                flags[change.entity_id] = payload
        elif change.entity_type == "cohort":
            cid = str(change.entity_id)
            members.pop(cid, None)
            if gone:
                cohorts.pop(change.entity_id, None)
                continue
            cohorts[change.entity_id] = {k: v for k, v in payload.items() if k != "members"}
            if payload.get("is_static"):
                members[cid] = list(payload.get("members") or ())
        else:
            api_token = payload.get("api_token", api_token)
            secret = payload.get("secret_token_hash", secret)
            mapping = dict(payload.get("group_type_mapping", mapping))
            matching = int(payload.get("property_matching_version", matching))
    return ProjectData(
        project_id=data.project_id,
        api_token=api_token,
        secret_token_hash=secret,
        group_type_mapping=mapping,
        version=version,
        flags=list(flags.values()),
        cohorts=list(cohorts.values()),
        static_members=members,
        property_matching_version=matching,
    )


def sdk_definitions(live: list[dict[str, Any]], snapshot: Snapshot) -> list[dict[str, Any]]:
    """The flags an SDK can reproduce (``snapshot.sdk_reproducible``), as PostHog SDKs evaluate them locally.

    An SDK evaluates a flag dependency locally only when the filter names the target by key and carries a
    ``dependency_chain`` (``Snapshot.dependency_chain``: every flag the target needs, in evaluation order,
    ending with the target; empty for a cycle). Numeric ``exact`` / ``is_not`` values are served as the text
    both sides compare (``portable_filters``). Filters are rewritten on copies; stored definitions are never
    touched.
    """
    keys = snapshot.sdk_reproducible
    by_key = {f["key"]: f for f in live}
    by_id = {str(f["id"]): f["key"] for f in live if "id" in f}
    out = []
    for flag in live:
        if flag["key"] not in keys:
            continue
        filters = flag.get("filters") or {}
        if references(flag) or _has_numeric_exact(filters):
            flag = msgspec.json.decode(_encoder.encode(flag))  # a deep copy to rewrite
            flag["filters"] = portable_filters(flag.get("filters") or {})
            for condition in flag["filters"].get("groups", ()):
                for prop in condition.get("properties") or ():
                    target = resolve(prop.get("key"), by_key, by_id) if prop.get("type") == "flag" else None
                    if target is not None:
                        prop["key"] = target
                        prop["dependency_chain"] = snapshot.dependency_chain(target)
        out.append(flag)
    return out


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _portable_filter(prop: Any) -> Any:
    if not isinstance(prop, dict) or prop.get("type") in ("cohort", "flag"):
        return prop
    if (prop.get("operator") or "exact") not in ("exact", "is_not"):
        return prop
    value = prop.get("value")
    if isinstance(value, list) and any(_numeric(item) for item in value):
        return {**prop, "value": [stringify(item) if _numeric(item) else item for item in value]}
    if _numeric(value):
        return {**prop, "value": stringify(value)}
    return prop


def portable_filters(group: Any) -> Any:
    """Flag filters or a cohort's property group with every numeric ``exact`` / ``is_not`` value in its text
    form (``5`` -> ``"5"``). Both compare as text, so answers do not change; but posthog-node refuses an
    integer there (it cannot tell ``5`` from ``5.0``) and would ask the server for every flag on each call."""
    if isinstance(group, list):
        return [portable_filters(item) for item in group]
    if not isinstance(group, dict):
        return group
    if "values" in group and isinstance(group["values"], list):
        return {**group, "values": [portable_filters(item) for item in group["values"]]}
    if "groups" in group and isinstance(group["groups"], list):
        conditions = [
            {**c, "properties": [_portable_filter(p) for p in c.get("properties") or []]}
            if isinstance(c, dict) and isinstance(c.get("properties"), list)
            else c
            for c in group["groups"]
        ]
        return {**group, "groups": conditions}
    return _portable_filter(group)


def _has_numeric_exact(filters: Any) -> bool:
    return bool(portable_filters(filters) != filters)


class Catalog:
    """Every project this node serves, by id and by public token. Reads are lock-free dict lookups."""

    __slots__ = ("_by_id", "_by_token", "loaded")

    def __init__(self) -> None:
        self._by_id: dict[int, ProjectState] = {}
        self._by_token: dict[str, ProjectState] = {}
        self.loaded = False

    def by_token(self, token: str) -> ProjectState | None:
        return self._by_token.get(token)

    def by_id(self, project_id: int) -> ProjectState | None:
        return self._by_id.get(project_id)

    def projects(self) -> Iterable[ProjectState]:
        return self._by_id.values()

    @property
    def version(self) -> int:
        """The highest change seq installed in any project (0 when empty)."""
        return max((p.version for p in self._by_id.values()), default=0)

    def install(self, state: ProjectState) -> bool:
        """Swap in a project's new state unless it is older than what is installed. Returns whether it did."""
        current = self._by_id.get(state.project_id)
        if current is not None and current.version > state.version:
            return False
        by_id = dict(self._by_id)
        by_id[state.project_id] = state
        by_token = {p.api_token: p for p in by_id.values()}
        # Two rebinds; a reader may see the new id map with the old token map for an instant, and
        # either map only ever holds complete, immutable states.
        self._by_id, self._by_token = by_id, by_token
        return True

    def replace_all(self, states: Mapping[int, ProjectState]) -> None:
        """Install a full load (start-up, reconciliation)."""
        self._by_id = dict(states)
        self._by_token = {p.api_token: p for p in states.values()}
        self.loaded = True

    def remove(self, project_id: int) -> None:
        by_id = dict(self._by_id)
        by_id.pop(project_id, None)
        self._by_id, self._by_token = by_id, {p.api_token: p for p in by_id.values()}

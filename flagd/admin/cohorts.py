"""``/api/projects/{project_id}/cohorts/``: list, create, get, partial update, soft delete.

Bodies: ``name``, ``description``, ``filters`` (``{"properties": {"type": "AND"|"OR", "values": [...]}}``),
``is_static`` and, for static cohorts, ``members`` (distinct ids). Same versioning rules as flags.

Every cohort record also carries ``tracking_since``: for a cohort with behavioural conditions that have
``event_filters``, the moment flagd started counting them (``store.persons.tracking``; counts before it are
not known), else null. A person-store failure leaves it null rather than failing the request.

A project may use at most ``max_behavioural_conditions`` distinct behavioural conditions
(``FLAGD_MAX_BEHAVIOURAL_CONDITIONS``, default 200): each is a counter every matching event updates. A cohort
write that would exceed it is a 400 on ``filters``; nothing is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.access import project_caller
from flagd.admin.errors import invalid
from flagd.admin.inputs import expected_version, page_params, path_id, read_json, take_deleted
from flagd.admin.outputs import JSON, envelope, plain
from flagd.admin.services import AdminServices
from store.errors import StoreError
from store.persons.tracking import counters_of, tracking_since
from store.records import CohortRecord


async def _record(services: AdminServices, cohort: CohortRecord) -> dict[str, Any]:
    body: dict[str, Any] = plain(cohort)
    body["tracking_since"] = None
    if services.persons is not None and not cohort.is_static and not cohort.deleted:
        with contextlib.suppress(StoreError):
            body["tracking_since"] = await tracking_since(services.persons, cohort.project_id, cohort.filters)
    return body


async def cohort_response(services: AdminServices, cohort: CohortRecord, status: int = 200) -> JSON:
    body = await _record(services, cohort)
    return JSON(body, status_code=status, headers={"ETag": f'"{cohort.version}"'})


def _check_conditions(
    services: AdminServices, project_id: int, new: Any, old: Mapping[str, Any] | None = None
) -> None:
    """400 when the write would give the project more distinct behavioural conditions than allowed.

    Counted from the project's compiled snapshot (what nodes count now) minus the cohort's old conditions plus
    its new ones; every condition is one more counter each matching event updates.
    """
    if not isinstance(new, Mapping):
        return  # the repository's validation names what is wrong
    added = counters_of(new)
    if not added:
        return
    state = services.catalog.by_id(project_id)
    current = {c.id for c in state.snapshot.counters} if state is not None else set()
    if old is not None:
        current -= set(counters_of(old))
    total = len(current | set(added))
    limit = services.max_behavioural_conditions
    if total > limit:
        raise invalid(
            "filters",
            f"the project would have {total} distinct behavioural conditions; the limit is "
            f"max_behavioural_conditions={limit} (FLAGD_MAX_BEHAVIOURAL_CONDITIONS)",
        )


async def list_cohorts(request: Request) -> Response:
    who, project_id = await project_caller(request)
    page = page_params(request)
    found = await who.services.repository.list_cohorts(project_id, limit=page.limit, offset=page.offset)
    items = [await _record(who.services, cohort) for cohort in found.items]
    return envelope(request, items, found.total, page)


async def create_cohort(request: Request) -> Response:
    who, project_id = await project_caller(request)
    body = await read_json(request, who.services.max_body_bytes)
    if isinstance(body, Mapping):
        _check_conditions(who.services, project_id, body.get("filters"))
    cohort = await who.services.repository.create_cohort(project_id, body, actor=who.actor)
    return await cohort_response(who.services, cohort, status=201)


async def get_cohort(request: Request) -> Response:
    who, project_id = await project_caller(request)
    cohort = await who.services.repository.get_cohort(project_id, path_id(request, "cohort_id"))
    return await cohort_response(who.services, cohort)


async def update_cohort(request: Request) -> Response:
    who, project_id = await project_caller(request)
    cohort_id = path_id(request, "cohort_id")
    body = await read_json(request, who.services.max_body_bytes)
    version = expected_version(request, body)
    repository = who.services.repository
    deleted = take_deleted(body, "cohort")
    if deleted:
        cohort = await repository.delete_cohort(
            project_id, cohort_id, actor=who.actor, expected_version=version
        )
        return await cohort_response(who.services, cohort)
    if not body:
        raise invalid("", "nothing to change: send at least one field")
    if "filters" in body:
        before = await repository.get_cohort(project_id, cohort_id)
        _check_conditions(who.services, project_id, body["filters"], before.filters)
    cohort = await repository.update_cohort(
        project_id, cohort_id, body, actor=who.actor, expected_version=version
    )
    return await cohort_response(who.services, cohort)


async def delete_cohort(request: Request) -> Response:
    who, project_id = await project_caller(request)
    cohort_id = path_id(request, "cohort_id")
    body = await read_json(request, who.services.max_body_bytes)
    version = expected_version(request, body)
    cohort = await who.services.repository.delete_cohort(
        project_id, cohort_id, actor=who.actor, expected_version=version
    )
    return await cohort_response(who.services, cohort)

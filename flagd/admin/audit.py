"""``/api/projects/{project_id}/audit_log/``: every change in a project, newest first.

Filters: ``entity_type`` (flag, cohort, project, api_key) and ``entity_id``; ``limit``/``offset`` pagination.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.access import project_caller
from flagd.admin.errors import invalid
from flagd.admin.inputs import optional_int_param, page_params
from flagd.admin.outputs import envelope

ENTITY_TYPES = ("flag", "cohort", "project", "api_key")


async def audit_log(request: Request) -> Response:
    who, project_id = await project_caller(request)
    page = page_params(request)
    entity_type = request.query_params.get("entity_type") or None
    if entity_type is not None and entity_type not in ENTITY_TYPES:
        raise invalid("entity_type", f"must be one of {', '.join(ENTITY_TYPES)}")
    found = await who.services.repository.audit_log(
        project_id,
        entity_type=entity_type,
        entity_id=optional_int_param(request, "entity_id"),
        limit=page.limit,
        offset=page.offset,
    )
    return envelope(request, found.items, found.total, page)

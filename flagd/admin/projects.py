"""``/api/projects/``: list the projects a key reaches, create one (global write keys), read, rename, rotate.

A new project's secret (``secret_token``, for SDK local evaluation) is in the creation response only; it is
stored hashed. ``POST /api/projects/{id}/rotate_secret/`` issues a new one and retires the old.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.access import caller, project_caller, require_global_write
from flagd.admin.errors import invalid
from flagd.admin.inputs import PageParams, read_json
from flagd.admin.outputs import JSON, envelope, plain
from store.records import Project
from store.sql.writes import GROUP_TYPE_INDEXES

_PROJECT_FIELDS = frozenset({"name", "group_type_mapping", "property_matching_version"})


def project_body(project: Project) -> dict[str, Any]:
    body: dict[str, Any] = plain(project)
    return body


async def list_projects(request: Request) -> Response:
    who = await caller(request)
    projects = [p for p in await who.services.repository.list_projects() if who.key.allows(p.id, write=False)]
    page = PageParams(limit=max(1, len(projects)), offset=0)
    return envelope(request, projects, len(projects), page)


async def create_project(request: Request) -> Response:
    who = await caller(request)
    require_global_write(who)
    body = await read_json(request, who.services.max_body_bytes)
    name = _name(body.pop("name", None))
    if body:
        raise invalid(sorted(body)[0], "unknown field (a new project takes only a name)")
    created = await who.services.repository.create_project(name, actor=who.actor)
    return JSON({**project_body(created.project), "secret_token": created.secret_token}, status_code=201)


async def get_project(request: Request) -> Response:
    who, project_id = await project_caller(request)
    return JSON(project_body(await who.services.repository.get_project(project_id)))


async def update_project(request: Request) -> Response:
    who, project_id = await project_caller(request)
    body = await read_json(request, who.services.max_body_bytes)
    unknown = sorted(set(body) - _PROJECT_FIELDS)
    if unknown:
        raise invalid(
            unknown[0],
            "unknown field (a project takes name, group_type_mapping and property_matching_version)",
        )
    name = _name(body["name"]) if "name" in body else None
    mapping = _mapping(body["group_type_mapping"]) if "group_type_mapping" in body else None
    matching = body.get("property_matching_version")
    if "property_matching_version" in body and (isinstance(matching, bool) or matching not in (1, 2)):
        raise invalid("property_matching_version", "must be 1 or 2")
    if name is None and mapping is None and matching is None:
        raise invalid("", "nothing to change: send name, group_type_mapping and/or property_matching_version")
    project = await who.services.repository.update_project(
        project_id,
        actor=who.actor,
        name=name,
        group_type_mapping=mapping,
        property_matching_version=matching,
    )
    return JSON(project_body(project))


async def rotate_secret(request: Request) -> Response:
    who, project_id = await project_caller(request)
    secret = await who.services.repository.rotate_project_secret(project_id, actor=who.actor)
    return JSON({"id": project_id, "secret_token": secret})


def _name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
        raise invalid("name", "must be a non-empty string of at most 200 characters")
    return value.strip()


def _mapping(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise invalid("group_type_mapping", 'must be an object such as {"0": "company"}')
    for index, name in value.items():
        if index not in GROUP_TYPE_INDEXES:
            raise invalid(f"group_type_mapping.{index}", "keys are group type indexes: '0' to '4'")
        if not isinstance(name, str) or not name:
            raise invalid(f"group_type_mapping.{index}", "must be a group type name such as 'company'")
    if len(set(value.values())) != len(value):
        raise invalid("group_type_mapping", "each group type name may appear only once")
    return {str(k): v for k, v in value.items()}

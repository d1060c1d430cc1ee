"""Who is calling and which project they may touch.

Every admin route except the OpenAPI document needs ``Authorization: Bearer <personal API key>``:
no key or an unknown/revoked one is a 401; a key whose scope does not reach the project, or a read-only key
asking to write, is a 403. ``{project_id}`` may be ``@current``: the key's own project (a key reaching every
project resolves it only when exactly one project exists).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from flagd.admin.errors import ApiError, forbidden, invalid, not_authenticated
from flagd.admin.inputs import parse_id, shown
from flagd.admin.services import AdminServices, services
from flagd.auth import actor_for, bearer_token
from store.records import ApiKey

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the key, the services and the audit actor."""

    key: ApiKey
    services: AdminServices

    @property
    def actor(self) -> str:
        return actor_for(self.key)


async def caller(request: Request) -> Caller:
    """Authenticate the request's bearer key (401 when missing, unknown or revoked)."""
    svc = services(request)
    raw = bearer_token(request.headers.get("authorization"))
    if raw is None:
        raise not_authenticated("send a personal API key: Authorization: Bearer <key>")
    key = await svc.authenticator(raw)
    if key is None or key.revoked_at is not None:
        raise not_authenticated("the API key is unknown or revoked")
    return Caller(key=key, services=svc)


async def project_caller(request: Request, *, write: bool | None = None) -> tuple[Caller, int]:
    """Authenticate and resolve ``{project_id}``; 403 unless the key reaches it (and may write, if needed)."""
    who = await caller(request)
    project_id = await resolve_project(who, request.path_params["project_id"])
    wants_write = request.method in WRITE_METHODS if write is None else write
    if not who.key.allows(project_id, write=False):
        raise forbidden(f"this API key has no access to project {project_id}")
    if wants_write and not who.key.allows(project_id, write=True):
        raise forbidden("this API key is read-only")
    await who.services.repository.get_project(project_id)  # 404 for a project that does not exist
    return who, project_id


async def resolve_project(who: Caller, raw: str) -> int:
    """A numeric project id, or ``@current`` resolved from the key."""
    if raw == "@current":
        if who.key.project_id is not None:
            return who.key.project_id
        projects = await who.services.repository.list_projects()
        if len(projects) == 1:
            return projects[0].id
        raise invalid("project_id", "this key reaches every project: use a numeric project id, not @current")
    project_id = parse_id(raw, "project_id")
    if project_id is None:
        detail = f"project_id must be a number or @current, got {shown(raw)}"
        raise ApiError(404, "invalid_request", "not_found", detail)
    return project_id


def require_global_write(who: Caller) -> None:
    """Creating projects needs a write key that reaches every project."""
    if who.key.project_id is not None:
        raise forbidden("only an API key that reaches every project can create projects")
    if who.key.scope != "write":
        raise forbidden("this API key is read-only")

"""Personal API keys: ``/api/projects/{project_id}/api_keys/`` for keys scoped to one project, and
``/api/api_keys/`` for every key, those reaching every project included (bootstrap's admin key among them).

The raw key is in the creation response only (it is stored hashed). ``/api/api_keys/`` needs a key that
reaches every project (write access to revoke); keys reaching every project are created with
``flagd create-key`` (or bootstrap), listed and revoked here or with ``flagd keys list|revoke``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.access import caller, project_caller
from flagd.admin.errors import forbidden, invalid, not_found
from flagd.admin.inputs import PageParams, path_id, read_json
from flagd.admin.outputs import JSON, envelope, plain

_FIELDS = frozenset({"label", "scope"})


async def list_keys(request: Request) -> Response:
    who, project_id = await project_caller(request, write=False)
    keys = await who.services.repository.list_api_keys(project_id)
    keys = [k for k in keys if k.project_id == project_id]
    page = PageParams(limit=max(1, len(keys)), offset=0)
    return envelope(request, keys, len(keys), page)


async def create_key(request: Request) -> Response:
    who, project_id = await project_caller(request)
    body = await read_json(request, who.services.max_body_bytes)
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise invalid(unknown[0], "unknown field (an API key takes label and scope)")
    label = body.get("label", "")
    if not isinstance(label, str) or len(label) > 200:
        raise invalid("label", "must be a string of at most 200 characters")
    scope = body.get("scope", "read")
    if scope not in ("read", "write"):
        raise invalid("scope", "must be 'read' or 'write'")
    created = await who.services.repository.create_api_key(
        label=label, scope=scope, project_id=project_id, actor=who.actor
    )
    who.services.authenticator.invalidate()
    return JSON({**plain(created.api_key), "key": created.raw_key}, status_code=201)


async def revoke_key(request: Request) -> Response:
    who, project_id = await project_caller(request)
    key_id = path_id(request, "key_id")
    keys = await who.services.repository.list_api_keys(project_id)
    if not any(k.id == key_id and k.project_id == project_id for k in keys):
        raise not_found(
            "no such API key in this project (keys reaching every project: DELETE /api/api_keys/{id}/)"
        )
    revoked = await who.services.repository.revoke_api_key(key_id, actor=who.actor)
    who.services.authenticator.invalidate()
    return JSON(plain(revoked))


async def list_all_keys(request: Request) -> Response:
    """Every API key, revoked ones included (``project_id`` null: the key reaches every project)."""
    who = await caller(request)
    if who.key.project_id is not None:
        raise forbidden("only an API key that reaches every project can list every key")
    keys = await who.services.repository.list_api_keys(None)
    page = PageParams(limit=max(1, len(keys)), offset=0)
    return envelope(request, keys, len(keys), page)


async def revoke_any_key(request: Request) -> Response:
    """Revoke any key, one reaching every project included (a global write key is needed)."""
    who = await caller(request)
    if who.key.project_id is not None or who.key.scope != "write":
        raise forbidden("only a write key that reaches every project can revoke keys here")
    key_id = path_id(request, "key_id")
    if not any(k.id == key_id for k in await who.services.repository.list_api_keys(None)):
        raise not_found("no such API key")
    revoked = await who.services.repository.revoke_api_key(key_id, actor=who.actor)
    who.services.authenticator.invalidate()
    return JSON(plain(revoked))

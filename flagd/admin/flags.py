"""``/api/projects/{project_id}/feature_flags/``: list, create, get, update, soft delete, explain, activity.

Bodies are PostHog-shaped (``key``, ``name``, ``filters``, ``active``, ``bucketing``,
``ensure_experience_continuity``, ``bucketing_identifier``). PATCH changes only the fields given;
``{"deleted": true}`` soft-deletes like PostHog's UI does. PATCH and DELETE take the version last read
(body ``version`` or ``If-Match``); a stale one is a 409 carrying ``current_version``. Validation happens
in the repository: a 400 lists every issue with its field path and nothing is written.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from evaluator import Context
from flagd.admin.access import project_caller
from flagd.admin.changes import proposed_fields
from flagd.admin.errors import ApiError, invalid, not_found
from flagd.admin.inputs import expected_version, page_params, path_id, read_json, take_deleted, text_param
from flagd.admin.outputs import JSON, envelope, plain
from flagd.admin.reasoning import check_ids, check_limit, what_if
from store.records import FlagRecord


def flag_body(flag: FlagRecord) -> dict[str, Any]:
    """A flag as the admin API shows it: the record, and ``bucketing_identifier`` top-level (PostHog's place
    for it; the store keeps it in ``filters``)."""
    body: dict[str, Any] = plain(flag)
    body["bucketing_identifier"] = flag.filters.get("bucketing_identifier")
    return body


def flag_response(flag: FlagRecord, status: int = 200) -> JSON:
    """One flag, with its version as the ETag (send it back as ``If-Match``)."""
    return JSON(flag_body(flag), status_code=status, headers={"ETag": f'"{flag.version}"'})


async def list_flags(request: Request) -> Response:
    who, project_id = await project_caller(request)
    page = page_params(request)
    search = text_param(request, "search")
    found = await who.services.repository.list_flags(
        project_id, search=search, limit=page.limit, offset=page.offset
    )
    return envelope(request, [flag_body(f) for f in found.items], found.total, page)


async def create_flag(request: Request) -> Response:
    who, project_id = await project_caller(request)
    body = await read_json(request, who.services.max_body_bytes)
    flag = await who.services.repository.create_flag(project_id, body, actor=who.actor)
    return flag_response(flag, status=201)


async def get_flag(request: Request) -> Response:
    who, project_id = await project_caller(request)
    flag = await who.services.repository.get_flag(project_id, path_id(request, "flag_id"))
    return flag_response(flag)


async def update_flag(request: Request) -> Response:
    who, project_id = await project_caller(request)
    flag_id = path_id(request, "flag_id")
    body = await read_json(request, who.services.max_body_bytes)
    version = expected_version(request, body)
    repository = who.services.repository
    deleted = take_deleted(body, "flag")
    if deleted is False and not body:  # "not deleted" and nothing else: the flag as it is (404 once deleted)
        return flag_response(await repository.get_flag(project_id, flag_id))
    if deleted:
        flag = await repository.delete_flag(project_id, flag_id, actor=who.actor, expected_version=version)
        return flag_response(flag)
    if not body:
        raise invalid("", "nothing to change: send at least one field")
    flag = await repository.update_flag(project_id, flag_id, body, actor=who.actor, expected_version=version)
    return flag_response(flag)


async def delete_flag(request: Request) -> Response:
    who, project_id = await project_caller(request)
    flag_id = path_id(request, "flag_id")
    body = await read_json(request, who.services.max_body_bytes)
    version = expected_version(request, body)
    flag = await who.services.repository.delete_flag(
        project_id, flag_id, actor=who.actor, expected_version=version
    )
    return flag_response(flag)


async def flag_activity(request: Request) -> Response:
    who, project_id = await project_caller(request)
    flag_id = path_id(request, "flag_id")
    await who.services.repository.get_flag(project_id, flag_id)
    page = page_params(request)
    found = await who.services.repository.audit_log(
        project_id, entity_type="flag", entity_id=flag_id, limit=page.limit, offset=page.offset
    )
    return envelope(request, found.items, found.total, page)


class ExplainRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The context to explain a flag for (the same fields an SDK sends to ``/flags``)."""

    distinct_id: str
    person_properties: dict[str, Any] = {}
    groups: dict[str, str] = {}
    group_properties: dict[str, dict[str, Any]] = {}
    device_id: str | None = None  # what flags with bucketing_identifier "device_id" hash


async def explain_flag(request: Request) -> Response:
    """The evaluator's step-by-step trace for one flag and context, against the snapshot this node serves."""
    who, project_id = await project_caller(request, write=False)
    flag = await who.services.repository.get_flag(project_id, path_id(request, "flag_id"))
    body = await read_json(request, who.services.max_body_bytes)
    if isinstance(body.get("distinct_id"), int) and not isinstance(body.get("distinct_id"), bool):
        body["distinct_id"] = str(body["distinct_id"])
    try:
        req = msgspec.convert(body, ExplainRequest)
    except msgspec.ValidationError as exc:
        raise _explain_invalid(exc) from None
    state = who.services.catalog.by_id(project_id)
    if state is None or flag.deleted or flag.key not in state.snapshot:
        raise not_found(
            f"flag {flag.key!r} is not in the snapshot this node serves (deleted, or not yet synced)"
        )
    ctx = Context(
        distinct_id=req.distinct_id,
        person_properties=req.person_properties,
        groups=req.groups,
        group_properties=req.group_properties,
        device_id=req.device_id or None,
    )
    explanation = state.snapshot.explain(flag.key, ctx)
    return JSON(
        {
            "flag": {"id": flag.id, "key": flag.key, "version": flag.version},
            "snapshot_version": state.version,
            "explanation": msgspec.to_builtins(explanation),
        }
    )


def _explain_invalid(exc: msgspec.ValidationError) -> ApiError:
    message = str(exc)
    attr = ""
    if " - at `$." in message:
        message, _, where = message.rpartition(" - at `$.")
        attr = where.rstrip("`")
    elif "Object missing required field `" in message:
        attr = message.split("`")[1]
    return invalid(attr, message)


WHAT_IF_FIELDS = ("rollout_percentage", "condition_index", "filters", "variants", "active")


async def what_if_flag(request: Request) -> Response:
    """``POST .../feature_flags/{id}/what_if/``: who turns on or off if the proposed change were made
    (``flagd.admin.reasoning.what_if``); nothing is written."""
    who, project_id = await project_caller(request, write=False)
    flag = await who.services.repository.get_flag(project_id, path_id(request, "flag_id"))
    body = await read_json(request, who.services.max_body_bytes)
    unknown = sorted(set(body) - {*WHAT_IF_FIELDS, "distinct_ids", "limit"})
    if unknown:
        raise invalid(unknown[0], "unknown field")
    distinct_ids = check_ids(body.pop("distinct_ids", None))
    limit = check_limit(body.pop("limit", None))
    changes = proposed_fields(flag, **body)
    result = await what_if(
        who.services, flag, changes, actor=who.actor, distinct_ids=distinct_ids, limit=limit
    )
    return JSON(result)

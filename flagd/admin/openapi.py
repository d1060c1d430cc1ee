"""``GET /api/openapi.json``: an OpenAPI 3.1 description of the admin API (and, briefly, the SDK endpoints).

Written by hand from the route table's rules so it stays small; a test checks every admin route appears.
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from flagd.admin.outputs import JSON
from flagd.admin.schemas import component_schemas

_ERR = {"$ref": "#/components/schemas/Error"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationError"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "invalid input: every issue with its field path; nothing written",
        401: "missing, unknown or revoked API key",
        403: "the key does not reach this project, or is read-only",
        404: "not found",
        409: "stale version: the body carries current_version",
        413: "body larger than the admin limit",
    }
    return {str(c): _json(_VALIDATION if c == 400 else _ERR, texts[c]) for c in codes}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: str | None = None,
    errors: tuple[int, ...] = (401, 403),
    status: str = "200",
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: ok, **_errors(*errors)}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


def _query(name: str, description: str, type_: str = "integer") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": type_},
    }


_PAGING = [_query("limit", "page size, 1-1000 (default 100)"), _query("offset", "items to skip (default 0)")]
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": 'the version last read, e.g. "3" (alternative to body `version`)',
}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"]},
            "previous": {"type": ["string", "null"]},
            "results": {"type": "array", "items": _ref(item)},
        },
    }


def _paths() -> dict[str, Any]:
    p = "/api/projects/{project_id}"
    flag, cohort = f"{p}/feature_flags/{{flag_id}}/", f"{p}/cohorts/{{cohort_id}}/"
    w = (400, 401, 403, 404)
    return {
        "/api/projects/": {
            "get": _op("Projects this key reaches", _json(_page("Project"))),
            "post": _op(
                "Create a project (global write key); the response holds its secret once",
                _json(_ref("NewProject"), "created"),
                body="ProjectInput",
                errors=(400, 401, 403),
                status="201",
            ),
        },
        f"{p}/": {
            "get": _op("A project", _json(_ref("Project")), errors=(401, 403, 404)),
            "patch": _op(
                "Rename or set group_type_mapping", _json(_ref("Project")), body="ProjectInput", errors=w
            ),
        },
        f"{p}/rotate_secret/": {"post": _op("Issue a new project secret", _json({"type": "object"}))},
        f"{p}/feature_flags/": {
            "get": _op(
                "Flags, by id",
                _json(_page("FeatureFlag")),
                params=[*_PAGING, _query("search", "matches key or name", "string")],
            ),
            "post": _op(
                "Create a flag",
                _json(_ref("FeatureFlag"), "created"),
                body="FeatureFlagInput",
                errors=(400, 401, 403, 409, 413),
                status="201",
            ),
        },
        flag: {
            "get": _op("A flag (ETag = its version)", _json(_ref("FeatureFlag")), errors=(401, 403, 404)),
            "patch": _op(
                'Change some fields; {"deleted": true} soft-deletes',
                _json(_ref("FeatureFlag")),
                body="FeatureFlagInput",
                errors=(*w, 409, 413),
                params=[_IF_MATCH],
            ),
            "delete": _op(
                "Soft-delete", _json(_ref("FeatureFlag")), errors=(401, 403, 404, 409), params=[_IF_MATCH]
            ),
        },
        f"{flag}explain/": {
            "post": _op(
                "Step-by-step evaluation trace for a context",
                _json({"type": "object"}),
                body="EvaluationContext",
                errors=w,
            ),
        },
        f"{flag}what_if/": {
            "post": _op(
                "Who turns on or off if the proposed change were made (over the persons seen in the last"
                " 7 days, or distinct_ids); nothing is written",
                _json(_ref("WhatIfResult")),
                body="WhatIfInput",
                errors=w,
            ),
        },
        f"{flag}activity/": {
            "get": _op("The flag's audit entries", _json(_page("AuditEntry")), params=_PAGING)
        },
        f"{p}/cohorts/": {
            "get": _op("Cohorts", _json(_page("Cohort")), params=_PAGING),
            "post": _op(
                "Create a cohort",
                _json(_ref("Cohort"), "created"),
                body="CohortInput",
                errors=(400, 401, 403, 413),
                status="201",
            ),
        },
        cohort: {
            "get": _op("A cohort", _json(_ref("Cohort")), errors=(401, 403, 404)),
            "patch": _op(
                "Change some fields",
                _json(_ref("Cohort")),
                body="CohortInput",
                errors=(*w, 409),
                params=[_IF_MATCH],
            ),
            "delete": _op(
                "Soft-delete", _json(_ref("Cohort")), errors=(401, 403, 404, 409), params=[_IF_MATCH]
            ),
        },
        f"{p}/api_keys/": {
            "get": _op("API keys scoped to this project", _json(_page("ApiKey"))),
            "post": _op(
                "Create a key; the response holds the raw key once",
                _json(_ref("ApiKey"), "created"),
                body="ApiKeyInput",
                errors=(400, 401, 403),
                status="201",
            ),
        },
        f"{p}/api_keys/{{key_id}}/": {
            "delete": _op("Revoke a key", _json(_ref("ApiKey")), errors=(401, 403, 404))
        },
        "/api/api_keys/": {
            "get": _op(
                "Every API key, those reaching every project included (needs such a key)",
                _json(_page("ApiKey")),
            ),
        },
        "/api/api_keys/{key_id}/": {
            "delete": _op(
                "Revoke any key (needs a write key reaching every project)",
                _json(_ref("ApiKey")),
                errors=(401, 403, 404),
            )
        },
        f"{p}/audit_log/": {
            "get": _op(
                "Changes, newest first",
                _json(_page("AuditEntry")),
                params=[
                    *_PAGING,
                    _query("entity_type", "flag|cohort|project|api_key", "string"),
                    _query("entity_id", "one entity"),
                ],
            ),
        },
        "/flags/": {
            "post": {
                "summary": "SDK: evaluate flags (PostHog /flags, any v; also /decide/)",
                "security": [],
                "responses": {"200": {"description": "flags"}},
            }
        },
        "/flags/definitions": {
            "get": {
                "summary": "SDK: definitions for local evaluation (ETag, 304)",
                "responses": {"200": {"description": "definitions"}},
            }
        },
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "summary": "OpenFeature OFREP single evaluation",
                "security": [],
                "responses": {"200": {"description": "value"}},
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "summary": "OpenFeature OFREP bulk evaluation",
                "security": [],
                "responses": {"200": {"description": "values"}},
            }
        },
        "/batch/": {
            "post": {
                "summary": "SDK: event intake (validated, acknowledged)",
                "security": [],
                "responses": {"200": {"description": "accepted"}},
            }
        },
        "/healthz": {
            "get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}
        },
        "/readyz": {
            "get": {
                "summary": "Readiness and snapshot status",
                "security": [],
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "text exposition"}},
            }
        },
        "/status": {
            "get": {
                "summary": "Live on-call page of the node (HTML, polls /status.json)",
                "security": [],
                "responses": {"200": {"description": "the page"}},
            }
        },
        "/status.json": {
            "get": {
                "summary": "Per route rps, p50/p90/p99, errors, shed (1/5/15 min, every worker); node, store",
                "security": [],
                "responses": {"200": {"description": "the status document (see README, On-call)"}},
            }
        },
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    project_id = {
        "name": "project_id",
        "in": "path",
        "required": True,
        "description": "a project id, or @current for the key's own project",
        "schema": {"type": "string"},
    }
    paths = _paths()
    for path, item in paths.items():
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        item_params = [
            project_id
            if n == "project_id"
            else {
                "name": n,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if n != "key" else "string"},
            }
            for n in names
        ]
        if item_params:
            item["parameters"] = item_params
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flagd admin API",
            "version": "1",
            "description": "Feature flags, cohorts, API keys and audit log (PostHog-shaped). "
            "Authenticate with `Authorization: Bearer <personal API key>`.",
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


@functools.cache
def _encoded() -> bytes:
    return bytes(JSON(build_document()).body)


async def document(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")

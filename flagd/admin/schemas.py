"""Component schemas of the admin API's OpenAPI document (``flagd.admin.openapi``)."""

from __future__ import annotations

from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_OBJ: dict[str, Any] = {"type": "object", "additionalProperties": True}


def component_schemas() -> dict[str, Any]:
    """Request and response shapes, referenced as ``#/components/schemas/<Name>``."""
    ts = {"type": "string", "format": "date-time"}
    return {
        "Error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "attr": {"type": ["string", "null"]},
                "current_version": {"type": ["integer", "null"]},
            },
        },
        "ValidationError": {
            "type": "object",
            "properties": {
                "type": {"const": "validation_error"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "attr": {
                                "type": "string",
                                "description": "field path, e.g. filters.groups[0].rollout_percentage",
                            },
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Project": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "api_token": {"type": "string"},
                "group_type_mapping": {"type": "object", "additionalProperties": {"type": "string"}},
                "property_matching_version": {"enum": [1, 2]},
                "created_at": ts,
                "created_by": {"type": "string"},
            },
        },
        "NewProject": {
            "allOf": [_ref("Project"), {"type": "object", "properties": {"secret_token": {"type": "string"}}}]
        },
        "ProjectInput": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "group_type_mapping": _OBJ,
                "property_matching_version": {
                    "enum": [1, 2],
                    "description": "exact/is_not on true/false: 1 compares truthiness (default), 2 text",
                },
            },
        },
        "FeatureFlag": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "project_id": {"type": "integer"},
                "key": {"type": "string"},
                "name": {"type": "string"},
                "filters": _OBJ,
                "active": {"type": "boolean"},
                "deleted": {"type": "boolean"},
                "bucketing": {"enum": ["murmur3", "posthog"]},
                "ensure_experience_continuity": {"type": "boolean"},
                "bucketing_identifier": {"enum": ["distinct_id", "device_id", None]},
                "version": {"type": "integer"},
                "created_at": ts,
                "created_by": {"type": "string"},
                "updated_at": ts,
                "updated_by": {"type": "string"},
            },
        },
        "FeatureFlagInput": {
            "type": "object",
            "properties": {
                "key": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,400}$"},
                "name": {"type": "string"},
                "filters": {**_OBJ, "description": "PostHog filters: groups, multivariate, payloads, ..."},
                "active": {"type": "boolean"},
                "bucketing": {"enum": ["murmur3", "posthog"]},
                "ensure_experience_continuity": {"type": "boolean"},
                "bucketing_identifier": {
                    "enum": ["distinct_id", "device_id", None],
                    "description": "what rollouts hash: the distinct id (default) or the device id",
                },
                "deleted": {"type": "boolean"},
                "version": {"type": "integer", "description": "PATCH/DELETE: the version last read"},
            },
        },
        "Cohort": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "filters": _OBJ,
                "is_static": {"type": "boolean"},
                "deleted": {"type": "boolean"},
                "version": {"type": "integer"},
                "member_count": {"type": "integer"},
            },
        },
        "CohortInput": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "filters": _OBJ,
                "is_static": {"type": "boolean"},
                "members": {"type": "array", "items": {"type": "string"}},
                "version": {"type": "integer"},
            },
        },
        "ApiKey": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "label": {"type": "string"},
                "key_prefix": {"type": "string"},
                "project_id": {"type": ["integer", "null"]},
                "scope": {"enum": ["read", "write"]},
                "key": {"type": "string", "description": "creation response only"},
                "created_at": ts,
                "revoked_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "ApiKeyInput": {
            "type": "object",
            "properties": {"label": {"type": "string"}, "scope": {"enum": ["read", "write"]}},
        },
        "AuditEntry": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "actor": {"type": "string"},
                "action": {"type": "string"},
                "entity_type": {"type": "string"},
                "entity_id": {"type": ["integer", "null"]},
                "before": {"type": ["object", "null"]},
                "after": {"type": ["object", "null"]},
                "created_at": ts,
            },
        },
        "WhatIfInput": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "rollout_percentage": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "maximum": 100,
                    "description": "every condition's rollout (only condition_index's when given)",
                },
                "condition_index": {"type": "integer", "minimum": 0},
                "filters": {
                    **_OBJ,
                    "description": "merged key by key into the flag's filters (null removes a key)",
                },
                "variants": {"type": ["array", "null"], "items": _OBJ},
                "active": {"type": "boolean"},
                "distinct_ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": 1000,
                    "description": "evaluate these instead of the persons seen in the last 7 days",
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            },
        },
        "WhatIfResult": {
            "type": "object",
            "properties": {
                "flag": _OBJ,
                "proposed": _OBJ,
                "population": {"type": "string"},
                "evaluated": {"type": "integer"},
                "turns_on": {"type": "array", "items": {"type": "string"}},
                "turns_on_count": {"type": "integer"},
                "turns_off": {"type": "array", "items": {"type": "string"}},
                "turns_off_count": {"type": "integer"},
                "variant_changes": {"type": "array", "items": _OBJ},
                "variant_changed_count": {"type": "integer"},
                "reshuffles_variants": {"type": "boolean"},
                "unchanged": {"type": "integer"},
                "served_before": {"type": "integer"},
                "served_after": {"type": "integer"},
                "direction": {"enum": ["widens", "narrows", "moves", "reshuffles", "none"]},
                "summary": {"type": "string"},
            },
        },
        "EvaluationContext": {
            "type": "object",
            "required": ["distinct_id"],
            "properties": {
                "distinct_id": {"type": "string"},
                "person_properties": _OBJ,
                "groups": {"type": "object", "additionalProperties": {"type": "string"}},
                "group_properties": _OBJ,
                "device_id": {"type": "string", "description": "hashed by device-bucketed flags"},
            },
        },
    }

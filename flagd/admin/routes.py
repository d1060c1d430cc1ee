"""The admin API's route table (the URL layout mirrors PostHog's ``/api/projects/...``)."""

from __future__ import annotations

from starlette.routing import Route

from flagd.admin import audit, cohorts, flags, keys, openapi, projects

_P = "/api/projects/{project_id}"


def admin_routes() -> list[Route]:
    """Every admin route; paths accept a missing trailing slash too."""
    table: list[tuple[str, object, list[str]]] = [
        ("/api/openapi.json", openapi.document, ["GET"]),
        ("/api/projects/", projects.list_projects, ["GET"]),
        ("/api/projects/", projects.create_project, ["POST"]),
        (f"{_P}/", projects.get_project, ["GET"]),
        (f"{_P}/", projects.update_project, ["PATCH"]),
        (f"{_P}/rotate_secret/", projects.rotate_secret, ["POST"]),
        (f"{_P}/feature_flags/", flags.list_flags, ["GET"]),
        (f"{_P}/feature_flags/", flags.create_flag, ["POST"]),
        (f"{_P}/feature_flags/{{flag_id}}/", flags.get_flag, ["GET"]),
        (f"{_P}/feature_flags/{{flag_id}}/", flags.update_flag, ["PATCH"]),
        (f"{_P}/feature_flags/{{flag_id}}/", flags.delete_flag, ["DELETE"]),
        (f"{_P}/feature_flags/{{flag_id}}/explain/", flags.explain_flag, ["POST"]),
        (f"{_P}/feature_flags/{{flag_id}}/activity/", flags.flag_activity, ["GET"]),
        (f"{_P}/feature_flags/{{flag_id}}/what_if/", flags.what_if_flag, ["POST"]),
        (f"{_P}/cohorts/", cohorts.list_cohorts, ["GET"]),
        (f"{_P}/cohorts/", cohorts.create_cohort, ["POST"]),
        (f"{_P}/cohorts/{{cohort_id}}/", cohorts.get_cohort, ["GET"]),
        (f"{_P}/cohorts/{{cohort_id}}/", cohorts.update_cohort, ["PATCH"]),
        (f"{_P}/cohorts/{{cohort_id}}/", cohorts.delete_cohort, ["DELETE"]),
        (f"{_P}/api_keys/", keys.list_keys, ["GET"]),
        (f"{_P}/api_keys/", keys.create_key, ["POST"]),
        (f"{_P}/api_keys/{{key_id}}/", keys.revoke_key, ["DELETE"]),
        (f"{_P}/audit_log/", audit.audit_log, ["GET"]),
        ("/api/api_keys/", keys.list_all_keys, ["GET"]),
        ("/api/api_keys/{key_id}/", keys.revoke_any_key, ["DELETE"]),
    ]
    routes: list[Route] = []
    for path, endpoint, methods in table:
        routes.append(Route(path, endpoint, methods=methods))  # type: ignore[arg-type]
        if path.endswith("/"):
            routes.append(Route(path.rstrip("/"), endpoint, methods=methods))  # type: ignore[arg-type]
    return routes

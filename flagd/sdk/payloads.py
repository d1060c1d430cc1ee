"""``GET /api/projects/{id|@current}/feature_flags/{key|id}/remote_config?token=``: a flag's payload for
server-side SDKs (posthog-node's ``getRemoteConfigPayload``, posthog-python's ``get_remote_config_payload``).

Auth as for local evaluation (``DefinitionsEndpoint.authorize``: ``Authorization: Bearer`` with the project
secret or a personal API key, ``?token=`` naming the project). The answer is PostHog's: the flag's ``"true"``
payload as a JSON string (the SDK parses it), or ``null`` when it has none; 404 for a flag the project does
not have. PostHog serves this only for flags marked as remote configuration; flagd has no such mark and
serves any live flag's ``"true"`` payload.
"""

from __future__ import annotations

from typing import Final

import msgspec

from flagd.errors import NotFound
from flagd.sdk.definitions import DefinitionsEndpoint
from flagd.sdk.http import JSON, Answer, Request, parse_query

PREFIX: Final = "/api/projects/"
_encode = msgspec.json.encode


def payload_path(path: str) -> tuple[str, str] | None:
    """``(project, flag)`` of ``/api/projects/<project>/feature_flags/<flag>/remote_config[/]``, else None."""
    if not path.startswith(PREFIX):
        return None
    parts = path[len(PREFIX) :].rstrip("/").split("/")
    if len(parts) != 4 or parts[1] != "feature_flags" or parts[3] != "remote_config":
        return None
    if not parts[0] or not parts[2]:
        return None
    return parts[0], parts[2]


class RemoteConfigPayloadEndpoint:
    """Serves one flag's ``"true"`` payload (see the module docstring)."""

    __slots__ = ("_definitions",)

    def __init__(self, definitions: DefinitionsEndpoint) -> None:
        self._definitions = definitions

    async def __call__(self, request: Request, request_id: str) -> Answer:
        found = payload_path(request.path)
        if found is None:
            raise NotFound("Not found.")
        project, ref = found
        token = parse_query(request.query_string).get("token")
        state = await self._definitions.authorize(request.headers, token)
        if project != "@current" and project != str(state.project_id):
            raise NotFound(f"project {project!r} is not the project of this token")
        definition = state.snapshot.definition(ref)
        if definition is None:
            raise NotFound(f"flag {ref!r} does not exist in this project")
        filters = definition.get("filters")
        payloads = filters.get("payloads") if isinstance(filters, dict) else None
        payload = payloads.get("true") if isinstance(payloads, dict) else None
        return 200, _encode(payload or None), JSON

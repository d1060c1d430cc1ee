"""``flagd mcp``: the same MCP server over stdio, for a local agent (Claude Code, an IDE, a script).

It opens the store ``FLAGD_*`` settings name, exactly as ``flagd serve`` does — the embedded SQLite file (and
its person store) or PostgreSQL + Redis — so it works on the same flags, persons and audit log as a running
server, which picks its writes up like any other (change log). It follows the change feed itself, so
explain and what-if see what ``/flags`` serves. No API key: whoever can start the process can read the
store; ``--read-only`` offers only the read tools. It does not bootstrap: start ``flagd serve`` once on an
empty store. The audit log names the agent ``mcp:<clientInfo.name> (stdio)``. Logs go to stderr; stdout
carries the protocol.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flagd.admin.access import Caller
from flagd.admin.services import AdminServices
from flagd.auth import Authenticator
from flagd.mcp.server import build_server
from flagd.sdk.persons import Persons
from flagd.settings import Settings, make_limits
from store.catalog import Catalog
from store.persons import PersonStore
from store.records import ApiKey


class StdioCaller:
    """Every message acts for the local process."""

    transport = "stdio"

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    def caller(self, request: Any) -> Caller:
        return self._caller


def local_key(*, read_only: bool) -> ApiKey:
    """The key-less scope of the local process: every project, read or write."""
    return ApiKey(
        id=0,
        label="stdio",
        key_prefix="",
        project_id=None,
        scope="read" if read_only else "write",
        created_at=datetime.now(UTC),
        created_by="flagd mcp",
    )


async def serve_stdio(settings: Settings, *, read_only: bool = False) -> None:
    """Open the store, answer MCP over stdin/stdout until the client closes it, close the store."""
    from flagd.app import open_backend, open_person_store

    catalog = Catalog()
    backend = await open_backend(settings, catalog)
    persons: PersonStore | None = None
    try:
        limits = make_limits(settings)
        enricher: Persons | None = None
        if settings.person_store:
            persons = await open_person_store(settings)
            enricher = Persons(
                persons,
                history_seconds=settings.event_history_days * 86400,
                max_distinct_id_chars=limits.max_distinct_id_chars,
                max_value_chars=limits.max_property_value_chars,
                max_person_properties=limits.max_person_properties,
            )
        services = AdminServices(
            repository=backend.repository,
            catalog=catalog,
            authenticator=Authenticator(backend.repository.authenticate, ttl=0),
            max_body_bytes=settings.admin_max_body_bytes,
            persons=persons,
            enricher=enricher,
            max_behavioural_conditions=settings.max_behavioural_conditions,
        )
        server = build_server(StdioCaller(Caller(local_key(read_only=read_only), services)))
        await server.run_stdio_async()
    finally:
        try:
            if persons is not None:
                await persons.close()
        finally:
            await backend.close()

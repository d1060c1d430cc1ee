"""What the admin handlers work with, carried in typed Starlette app state (no module globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from starlette.requests import Request

from evaluator import Context
from flagd.auth import Authenticator
from store.catalog import Catalog, ProjectState
from store.persons import PersonStore
from store.sql.repository import AdminRepository

# ``Persons.enrich``: the context with stored person/group properties and behaviour counts merged in.
Enrich = Callable[[ProjectState, Context, Collection[str] | None], Awaitable[Context]]


@dataclass(frozen=True, slots=True)
class AdminServices:
    """Opened by the app's lifespan and stored as ``app.state.services``."""

    repository: AdminRepository
    catalog: Catalog
    authenticator: Authenticator
    max_body_bytes: int = 1_048_576
    persons: PersonStore | None = None  # for cohorts' tracking_since
    max_behavioural_conditions: int = 200  # distinct behavioural counters per project
    enrich: Enrich | None = None  # explain reads the person store as a flag check does


def services(request: Request) -> AdminServices:
    """The services of the app serving this request (set during start-up)."""
    found = getattr(request.app.state, "services", None)
    if not isinstance(found, AdminServices):
        raise RuntimeError("admin services are not set: the app's lifespan did not run")
    return found

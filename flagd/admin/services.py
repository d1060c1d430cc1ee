"""What the admin handlers work with, carried in typed Starlette app state (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from flagd.auth import Authenticator
from flagd.sdk.persons import Persons
from store.catalog import Catalog
from store.persons import PersonStore
from store.sql.repository import AdminRepository


@dataclass(frozen=True, slots=True)
class AdminServices:
    """Opened by the app's lifespan and stored as ``app.state.services``."""

    repository: AdminRepository
    catalog: Catalog
    authenticator: Authenticator
    max_body_bytes: int = 1_048_576
    persons: PersonStore | None = None  # for cohorts' tracking_since and the persons seen (what-if)
    enricher: Persons | None = None  # reads stored person data for a flag exactly as /flags does
    max_behavioural_conditions: int = 200  # distinct behavioural counters per project


def services(request: Request) -> AdminServices:
    """The services of the app serving this request (set during start-up)."""
    found = getattr(request.app.state, "services", None)
    if not isinstance(found, AdminServices):
        raise RuntimeError("admin services are not set: the app's lifespan did not run")
    return found

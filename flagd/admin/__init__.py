"""The admin REST API (Starlette): projects, feature flags, cohorts, API keys, audit log, OpenAPI document.

``create_admin_app(lifespan)`` builds the Starlette app; its lifespan stores ``AdminServices`` in
``app.state.services``. The SDK hot path is not here: ``flagd.sdk.SdkApp`` answers its own paths and hands
everything else (and the lifespan) to this app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from flagd.admin.access_log import AdminAccessLog
from flagd.admin.errors import EXCEPTION_HANDLERS
from flagd.admin.routes import admin_routes
from flagd.admin.services import AdminServices

__all__ = ["AdminServices", "create_admin_app"]

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_admin_app(lifespan: Lifespan | None = None, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The admin API as a Starlette app (``lifespan`` opens the backend and sets ``app.state.services``);
    ``extra_routes`` are served beside it, behind the same middleware (``/mcp``)."""
    return Starlette(
        routes=[*admin_routes(), *extra_routes],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(AdminAccessLog)],
        lifespan=lifespan,
    )

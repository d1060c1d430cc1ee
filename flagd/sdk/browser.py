"""What posthog-js asks of its host besides ``/flags`` and events: remote config, surveys, early access.

* ``GET /array/<token>/config`` (JSON) and ``/array/<token>/config.js`` (``window._POSTHOG_REMOTE_CONFIG
  [token] = {config, siteApps}``). posthog-js fetches one of them on every page load before its first
  ``/flags`` call, and takes the compression it may use from ``supportedCompression``. flagd answers what it
  supports: gzip bodies (``gzip``, ``gzip-js``), feature flags (``hasFeatureFlags`` when the project has
  any), events on ``/i/v0/e/``; session recording, heatmaps, product tours, site apps and autocaptured
  exceptions are off, and surveys are left out (posthog-js then loads no surveys bundle). Browsers cache
  it for a minute.
* ``GET /api/surveys/?token=`` → ``{"surveys": []}`` and ``GET /api/early_access_features/?token=`` →
  ``{"earlyAccessFeatures": []}``: flagd has neither, and says so instead of a 404.

An unknown token is a 404 for the config (as PostHog answers) and a 401 for the lists. CORS headers come
from the response plumbing (``flagd.sdk.app``), like on every SDK response.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from flagd.errors import NotFound, Unauthorized
from flagd.sdk.http import JSON, Answer, Headers, Request, parse_query
from flagd.sdk.projects import project_for
from store.catalog import Catalog, ProjectState

PREFIX: Final = "/array/"
_encode = msgspec.json.encode
_CACHE: Final = (b"cache-control", b"public, max-age=60")
_JSON_CACHED: Final[Headers] = [*JSON, _CACHE]
_SCRIPT: Final[Headers] = [(b"content-type", b"application/javascript; charset=utf-8"), _CACHE]


def config_token(path: str) -> tuple[str, bool] | None:
    """``(token, as_script)`` for ``/array/<token>/config[.js]``; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    token, _, tail = path[len(PREFIX) :].partition("/")
    if not token or tail not in ("config", "config.js"):
        return None
    return token, tail == "config.js"


def remote_config(state: ProjectState) -> dict[str, Any]:
    """The remote config posthog-js reads (``RemoteConfig`` in posthog-js), for what flagd supports."""
    return {
        "token": state.api_token,
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": len(state.snapshot) > 0,
        "analytics": {"endpoint": "/i/v0/e/"},
        "autocapture_opt_out": False,
        "autocaptureExceptions": False,
        "capturePerformance": False,
        "captureDeadClicks": False,
        "elementsChainAsString": True,
        "heatmaps": False,
        # No "surveys" key: posthog-js loads its surveys bundle from the host whenever the key is there, even
        # false, and flagd serves no such bundle (a CORS error in every page). Absent means "not loaded".
        "productTours": False,
        "conversations": False,
        "sessionRecording": False,
        "defaultIdentifiedOnly": True,
        "siteApps": [],
        "toolbarParams": {},
        "isAuthenticated": False,
    }


class RemoteConfigEndpoint:
    """``/array/<token>/config`` and ``/array/<token>/config.js``."""

    __slots__ = ("_catalog",)

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def __call__(self, request: Request, request_id: str) -> Answer:
        found = config_token(request.path)
        state = self._catalog.by_token(found[0]) if found is not None else None
        if found is None or state is None:
            raise NotFound("Unknown project token.")
        config = remote_config(state)
        if not found[1]:
            return 200, _encode(config), _JSON_CACHED
        token = _encode(state.api_token).decode()
        wrapped = _encode({"config": config, "siteApps": []}).decode()
        script = (
            "(function() {\n"
            "  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
            f"  window._POSTHOG_REMOTE_CONFIG[{token}] = {wrapped};\n"
            "})();\n"
        )
        return 200, script.encode(), _SCRIPT


class EmptyListEndpoint:
    """A product flagd does not have, answered as an empty list under ``field`` for a known token."""

    __slots__ = ("_body", "_catalog")

    def __init__(self, catalog: Catalog, field: str) -> None:
        self._catalog = catalog
        self._body = _encode({field: []})

    async def __call__(self, request: Request, request_id: str) -> Answer:
        token = parse_query(request.query_string).get("token")
        if not token:
            raise Unauthorized("Send the project token as ?token=<phc_...>.")
        project_for(self._catalog, token, "Project API key invalid.")
        return 200, self._body, JSON

"""Finding the project a request names, the same way on every SDK route."""

from __future__ import annotations

from flagd.errors import NotReady, Unauthorized
from store.catalog import Catalog, ProjectState


def project_for(catalog: Catalog, token: str, detail: str) -> ProjectState:
    """The project with this public token.

    Unknown token: 401 ``Unauthorized(detail)`` — unless the catalog has not finished loading, in which case
    the token may well be valid: 503 ``NotReady`` with ``Retry-After``, so SDKs keep their values instead of
    treating their key as revoked."""
    state = catalog.by_token(token)
    if state is None:
        if not catalog.loaded:
            raise NotReady("flagd is still loading its flags; retry shortly")
        raise Unauthorized(detail)
    return state

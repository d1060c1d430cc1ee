"""Errors raised by the flagd server package. The tree::

    FlagdError
    └── RequestRejected     the request gets an error answer; carries the HTTP status, a code, a detail
        ├── BadRequest       400: malformed body or query, or a field of the wrong type (names the field)
        ├── Unauthorized     401: the project token or API key is unknown (``authentication_error``)
        ├── Forbidden        403: the key is valid but may not read this project
        ├── NotFound         404: nothing at this path (or the flag is unknown, for OFREP)
        ├── MethodNotAllowed 405: the path exists but takes another method (``Allow`` says which)
        ├── BodyTimeout      408: the body did not fully arrive within ``body_timeout_seconds``
        ├── PayloadTooLarge  413: the body, before or after decompression, is over ``max_body_bytes``
        ├── LimitExceeded    400: a field is over one of ``flagd.limits.Limits`` (the detail names it)
        ├── Overloaded       503: shed by ``flagd.shedding.LoadShedder``; carries ``Retry-After``
        ├── NotReady         503: the node has not loaded its flags yet; carries ``Retry-After``
        └── StoreFailed      503: the person store did not apply an event batch (retry; nothing is lost
                             twice: events are deduplicated by uuid)
    ClientDisconnected       the client went away before its request body was complete (no answer is sent;
                             counted as status 499, logged at debug)

Only the edge (``flagd.sdk``) raises these, while decoding a request; they never escape an endpoint: the
router turns them into the JSON error shape of the protocol being spoken (PostHog or OFREP).
"""

from __future__ import annotations


class FlagdError(Exception):
    """Root of every error the flagd server package raises."""


class RequestRejected(FlagdError):  # noqa: N818 -- names the outcome, like its subclasses
    """A request that gets an error answer. ``code`` is machine-readable, ``detail`` says what was wrong."""

    status = 400
    type = "validation_error"
    code = "invalid_input"

    def __init__(self, detail: str, *, code: str | None = None, attr: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.attr = attr


class BadRequest(RequestRejected):
    """The request body or query string is malformed."""


class Unauthorized(RequestRejected):
    """The project token or API key is unknown."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(RequestRejected):
    """The key is valid but may not read the requested project."""

    status = 403
    type = "authentication_error"
    code = "permission_denied"


class NotFound(RequestRejected):
    """Nothing is served at this path, or the named flag does not exist."""

    status = 404
    type = "invalid_request"
    code = "not_found"


class MethodNotAllowed(RequestRejected):
    """The path exists but answers another HTTP method."""

    status = 405
    type = "invalid_request"
    code = "method_not_allowed"


class BodyTimeout(RequestRejected):
    """The request body did not fully arrive within ``body_timeout_seconds`` of the request starting."""

    status = 408
    type = "invalid_request"
    code = "body_timeout"


class ClientDisconnected(FlagdError):  # noqa: N818 -- names the outcome, like RequestRejected
    """The client closed the connection while its request body was still arriving."""


class PayloadTooLarge(RequestRejected):
    """The body is over the byte limit, before or after decompression."""

    status = 413
    type = "validation_error"
    code = "payload_too_large"


class LimitExceeded(RequestRejected):
    """A field of the request is over one of the configured limits."""

    code = "limit_exceeded"


class Overloaded(RequestRejected):
    """The worker shed this request to keep latency low for the ones it admitted (503, or 429 for OFREP,
    whose providers back off on 429)."""

    status = 503
    type = "server_error"
    code = "overloaded"

    def __init__(self, detail: str, *, retry_after: int = 1, status: int = 503) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.status = status


class NotReady(RequestRejected):
    """The node has not loaded its catalog yet, so it cannot tell a valid token from an invalid one."""

    status = 503
    type = "server_error"
    code = "not_ready"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StoreFailed(RequestRejected):
    """The person store could not apply an event batch; the SDK should retry (uuids make retries safe)."""

    status = 503
    type = "server_error"
    code = "store_unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

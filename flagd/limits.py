"""What one SDK request may ask for, and what the server logs about it.

Every limit is checked at the edge, before evaluation; a request over a limit gets a clear error naming the
limit and its value, and nothing else happens. Defaults, and the answer each one produces:

=============================  ===========  ==========================================================
field                          default      over the limit
=============================  ===========  ==========================================================
``max_body_bytes``             1 MiB        413 ``payload_too_large`` (raw body, and again after gzip or
                                            base64 decoding: a gzip bomb stops here, not in memory)
``max_event_body_bytes``       5 MiB        413, for the event intake endpoints (``/batch/`` ...)
``max_distinct_id_chars``      200          never an error: the id is cut to this length (PostHog does)
``max_properties``             1000         400 ``limit_exceeded`` (person properties, and properties of any
                                            one group; also OFREP context attributes)
``max_groups``                 50           400 ``limit_exceeded`` (entries in ``groups``)
``max_flag_keys``              1000         400 ``limit_exceeded`` (``flag_keys_to_evaluate``)
``max_property_value_chars``   10000        400 ``limit_exceeded`` (a string value's length; other values
                                            are measured as compact JSON)
``max_batch_events``           1000         400 ``limit_exceeded`` (events in one ``/batch/`` body)
``max_json_depth``             32           400 ``limit_exceeded`` (arrays/objects nested deeper than this,
                                            anywhere in an SDK body; checked before decoding; at most 256)
``max_json_elements``          20000        400 ``limit_exceeded`` (JSON values in a ``/flags``, ``/decide``
                                            or OFREP body: every object, array and item counts; checked
                                            before decoding, so a rejected body costs one scan of its bytes)
``max_event_json_elements``    200000       the same, for the event intake endpoints
``body_timeout_seconds``       10.0         408 ``body_timeout`` when a request body has not fully arrived
                                            this long after the request started (checked at least once a
                                            second; a slow upload never holds an evaluation slot: requests
                                            are admitted once their body is read)
``max_person_properties``      1000         400 ``limit_exceeded`` (stored properties of one person or
                                            group, after the batch; nothing of the batch is applied)
``max_request_id_chars``       128          an incoming ``X-Request-Id`` longer than this is replaced
``auth_cache_seconds``         1.0          how long a personal API key lookup (``/flags/definitions``)
                                            is cached, hit or miss, so a poll storm does not reach the DB;
                                            at most 1: the bound on a revocation reaching every worker
=============================  ===========  ==========================================================

Logging policy (the hot path formats no log line per request by default):

- ``slow_request_seconds`` (0.25): a request slower than this is logged at warning with its route,
  status, duration and request id — at most 10 such lines a second per worker (each says how many were
  skipped before it), so an overloaded worker does not add a log flood to its load.
- ``log_sample_rate`` (0.0): the fraction of other successful requests logged at info (an access-log
  sample; 1.0 logs every request, for debugging).
- Server errors (an unexpected exception → 500) are always logged at error with the traceback; requests
  rejected with 4xx are logged at debug; shed requests are summed and logged at warning at most once a
  second per worker. A client that disconnects before its body is complete gets no answer: it is logged
  at debug and counted as status 499.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_JSON_DEPTH = 256  # the highest ``max_json_depth`` allowed: well inside Python's recursion limit


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits and the logging policy of the SDK endpoints (see the module docstring)."""

    max_body_bytes: int = 1024 * 1024
    max_event_body_bytes: int = 5 * 1024 * 1024
    max_distinct_id_chars: int = 200
    max_properties: int = 1000
    max_groups: int = 50
    max_flag_keys: int = 1000
    max_property_value_chars: int = 10_000
    max_batch_events: int = 1000
    max_json_depth: int = 32
    max_json_elements: int = 20_000
    max_event_json_elements: int = 200_000
    body_timeout_seconds: float = 10.0
    max_person_properties: int = 1000
    max_request_id_chars: int = 128
    auth_cache_seconds: float = 1.0
    slow_request_seconds: float = 0.25
    log_sample_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_event_body_bytes",
            "max_distinct_id_chars",
            "max_properties",
            "max_groups",
            "max_flag_keys",
            "max_property_value_chars",
            "max_batch_events",
            "max_json_depth",
            "max_json_elements",
            "max_event_json_elements",
            "max_person_properties",
            "max_request_id_chars",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.max_json_depth > MAX_JSON_DEPTH:
            # Deeper than this and the decoder itself would hit Python's recursion limit (a 500, not a 400).
            raise ValueError(
                f"Limits.max_json_depth must be at most {MAX_JSON_DEPTH}, got {self.max_json_depth}"
            )
        if not self.body_timeout_seconds > 0:
            raise ValueError(
                f"Limits.body_timeout_seconds must be positive, got {self.body_timeout_seconds!r}"
            )
        if self.auth_cache_seconds < 0 or self.slow_request_seconds < 0:
            raise ValueError("Limits.auth_cache_seconds and slow_request_seconds must not be negative")
        if self.auth_cache_seconds > 1:
            # README promises a revoked key stops working everywhere within a second.
            raise ValueError(f"Limits.auth_cache_seconds must be at most 1, got {self.auth_cache_seconds!r}")
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise ValueError(f"Limits.log_sample_rate must be within 0..1, got {self.log_sample_rate!r}")

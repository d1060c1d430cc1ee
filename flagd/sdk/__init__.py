"""The SDK hot path: PostHog ``/flags`` + ``/decide``, local-evaluation definitions, event intake, OFREP,
posthog-js's remote config (``browser``), server SDKs' flag payloads (``payloads``) and probes, served by a
raw ASGI app (``SdkApp``) in front of the admin API; ``flagd.sdk.rsgi.RsgiApp`` serves the same over
Granian's RSGI interface (what ``flagd serve`` runs)."""

from flagd.sdk.app import SdkApp

__all__ = ["SdkApp"]

"""The SDK hot path: PostHog ``/flags`` + ``/decide``, local-evaluation definitions, event intake, OFREP and
probes, served by a raw ASGI app (``SdkApp``) in front of the admin API."""

from flagd.sdk.app import SdkApp

__all__ = ["SdkApp"]

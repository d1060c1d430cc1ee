"""Redis clients from URLs: a single server (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster.

A cluster is named by its own scheme, ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS): any one
node of the cluster; the client discovers the others (``CLUSTER SLOTS``) and follows ``MOVED``/``ASK``
redirections and failovers. flagd's keys are hash-tagged (``{p<project>}``, ``{g}``, ``{p<project>:<id>}``)
so every script and multi-key command touches one slot.

``fail_fast=True`` builds a client for hedged reads: no retries of its own (the ``HedgedReader`` decides
what to retry, and where), so a dead server fails in one connect attempt instead of three with backoff.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["CLUSTER_SCHEMES", "AnyRedis", "is_cluster_url", "redis_client", "server_name"]

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
AnyRedis = aioredis.Redis | RedisCluster


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``)."""
    return url.startswith(CLUSTER_SCHEMES)


def server_name(url: str) -> str:
    """``host:port`` (or the socket path) of ``url``, without credentials: the label metrics use."""
    rest = url.split("://", 1)[-1]
    rest = rest.rsplit("@", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0] or rest


def redis_client(url: str, *, timeout: float = 5.0, fail_fast: bool = False, **options: Any) -> AnyRedis:
    """A client for ``url`` (see the module docstring); ``timeout`` bounds connects and replies."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **options}
    if fail_fast:
        kwargs["retry"] = Retry(NoBackoff(), 0)
    if is_cluster_url(url):
        plain = url.replace("+cluster://", "://", 1)
        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(plain, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)

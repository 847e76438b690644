"""Redis backend for the response cache: one standalone server or a Redis Cluster.

Every failure of the server side (refused or dropped connections, timeouts, ``CLUSTERDOWN`` while
a failover runs, redirect storms, a cluster that cannot be mapped) surfaces as
:class:`CacheUnavailable` within a bounded time, so the caller degrades to a miss. Recovery needs
no restart: after a connection error redis-py's cluster client marks its slot map stale and the next
command re-reads the topology (``CLUSTER SLOTS``) from the nodes it knows, so a promoted replica is
found as soon as the cluster has finished the failover.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import DataError, RedisClusterException, RedisError

from quantum_router.cache.base import CacheUnavailable
from quantum_router.cache.breaker import CircuitBreaker

_T = TypeVar("_T")

# Any failure on the server side is an outage for a cache. TimeoutError is asyncio.timeout's.
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)


class RedisCache:
    """A :class:`~quantum_router.cache.base.Cache` on Redis or Redis Cluster.

    :param url: ``redis://host:port`` of the server, or of any one cluster node (a seed).
    :param cluster: use :class:`redis.asyncio.cluster.RedisCluster` instead of a single connection.
    :param prefix: prepended to every key, so several users can share one keyspace.
    :param socket_timeout: seconds for connecting and for each socket read or write.
    :param operation_timeout: hard bound in seconds for one ``get``/``set``/``ping`` including
        retries and topology refreshes; defaults to four socket timeouts.
    :param retries: how often a command is retried after a connection error (each retry re-reads
        the cluster topology first).
    :param breaker: skips Redis for a while after a failure (shared with the rate limiter); by default
        one of this cache's own that never opens.
    """

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        prefix: str = "",
        socket_timeout: float = 0.25,
        operation_timeout: float | None = None,
        retries: int = 1,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if socket_timeout <= 0:
            raise ValueError("socket_timeout must be positive")
        self._prefix = prefix
        self._timeout = operation_timeout if operation_timeout is not None else 4 * socket_timeout
        self.cluster = cluster
        self._breaker = breaker or CircuitBreaker(0)
        self._client: Redis | RedisCluster = make_client(url, cluster, socket_timeout, retries)

    async def get(self, key: str) -> bytes | None:
        """Return the stored value, or None when absent or expired.

        :raises CacheUnavailable: the server cannot be reached within the operation timeout.
        """
        value = await self._call(lambda: self._client.get(self._key(key)))
        if value is None or isinstance(value, bytes):
            return value
        raise CacheUnavailable(f"unexpected reply type {type(value).__name__} from redis GET")

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds`` (at least one millisecond).

        :raises CacheUnavailable: the server cannot be reached within the operation timeout.
        """
        ttl_ms = max(1, round(ttl_seconds * 1000))
        await self._call(lambda: self._client.set(self._key(key), value, px=ttl_ms))

    async def ping(self) -> bool:
        """True when the server answers PING within the operation timeout (never raises)."""
        try:
            return bool(await self._call(self._client.ping))
        except CacheUnavailable:
            return False

    async def close(self) -> None:
        """Close every connection; the object must not be used afterwards."""
        with contextlib.suppress(*_UNAVAILABLE_ERRORS):
            await asyncio.wait_for(self._client.aclose(), timeout=self._timeout)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _call(self, command: Callable[[], Awaitable[_T]]) -> _T:
        """Run one client call under the hard timeout, mapping outages to CacheUnavailable; skipped at once
        while the breaker is open."""
        if not self._breaker.allow():
            raise CacheUnavailable("redis skipped: it failed moments ago")
        try:
            async with asyncio.timeout(self._timeout):
                result = await command()
        except DataError:
            # We passed a bad argument: a bug to surface, not an outage to hide.
            raise
        except _UNAVAILABLE_ERRORS as exc:
            self._breaker.failure(type(exc).__name__)
            raise CacheUnavailable(f"redis unavailable: {type(exc).__name__}: {exc}") from exc
        self._breaker.success()
        return result


def make_client(url: str, cluster: bool, socket_timeout: float, retries: int) -> Redis | RedisCluster:
    """Build the redis-py client; neither kind connects before its first command."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), retries),
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)

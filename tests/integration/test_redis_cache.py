"""RedisCache against a real six-node Redis Cluster and a real standalone redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import pytest

from quantum_router.cache.base import CacheUnavailable
from quantum_router.cache.redis_cache import RedisCache
from tests.integration.servers import RedisClusterServers, StandaloneRedis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SOCKET_TIMEOUT = 0.25
OPERATION_TIMEOUT = 1.0
# Event-loop and scheduling jitter on a loaded CI machine, on top of the cache's own hard bound.
SLACK = 1.0
FAILOVER_DEADLINE = 45.0
KEYS = [f"key-{i}" for i in range(24)]  # enough keys to land on every master's slots


@pytest.fixture
def cluster(redis_cluster: RedisClusterServers) -> RedisClusterServers:
    """The session cluster, with every node running again after whatever the last test broke."""
    redis_cluster.start_all()
    return redis_cluster


@pytest.fixture
async def cache(cluster: RedisClusterServers) -> AsyncIterator[RedisCache]:
    """A cluster-mode cache with a per-test key prefix."""
    cache = RedisCache(
        cluster.url,
        cluster=True,
        prefix=f"test:{uuid.uuid4().hex}:",
        socket_timeout=SOCKET_TIMEOUT,
        operation_timeout=OPERATION_TIMEOUT,
    )
    yield cache
    await cache.close()


async def timed(call: Awaitable[object]) -> tuple[bool, float]:
    """Run one cache call; return (succeeded, seconds). Unavailability is allowed, hanging is not."""
    start = time.monotonic()
    try:
        await call
        ok = True
    except CacheUnavailable:
        ok = False
    elapsed = time.monotonic() - start
    assert elapsed < OPERATION_TIMEOUT + SLACK, f"cache call took {elapsed:.2f} s"
    return ok, elapsed


async def round_trip_all(cache: RedisCache, tag: bytes) -> bool:
    """Set and read back every key; True only if every call succeeded and returned the value."""
    all_ok = True
    for key in KEYS:
        ok, _ = await timed(cache.set(key, tag, ttl_seconds=60))
        all_ok = all_ok and ok
        if ok:
            try:
                all_ok = all_ok and await cache.get(key) == tag
            except CacheUnavailable:
                all_ok = False
    return all_ok


async def wait_until_serving(cache: RedisCache, deadline_s: float) -> float:
    """Poll full round trips until one passes; return the seconds it took. Bounded by deadline_s."""
    start = time.monotonic()
    attempt = 0
    while time.monotonic() - start < deadline_s:
        attempt += 1
        if await round_trip_all(cache, b"round-%d" % attempt):
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    pytest.fail(f"cache did not serve every key again within {deadline_s} s")


async def test_set_get_and_missing_key(cache: RedisCache) -> None:
    await cache.set("greeting", b"hello", ttl_seconds=30)
    assert await cache.get("greeting") == b"hello"
    assert await cache.get("never-set") is None
    assert await cache.ping()


async def test_keys_spread_over_all_masters(cache: RedisCache) -> None:
    assert await round_trip_all(cache, b"spread")


async def test_prefix_isolates_keyspaces(cluster: RedisClusterServers) -> None:
    first = RedisCache(cluster.url, cluster=True, prefix="a:", socket_timeout=SOCKET_TIMEOUT)
    second = RedisCache(cluster.url, cluster=True, prefix="b:", socket_timeout=SOCKET_TIMEOUT)
    try:
        key = f"shared-{uuid.uuid4().hex}"
        await first.set(key, b"from-a", ttl_seconds=30)
        assert await second.get(key) is None
        assert await first.get(key) == b"from-a"
    finally:
        await first.close()
        await second.close()


async def test_ttl_expiry(cache: RedisCache) -> None:
    await cache.set("short-lived", b"x", ttl_seconds=0.3)
    assert await cache.get("short-lived") == b"x"
    deadline = time.monotonic() + 5
    while await cache.get("short-lived") is not None:
        assert time.monotonic() < deadline, "entry outlived its TTL by more than 4.7 s"
        await asyncio.sleep(0.1)


async def test_master_failover_degrades_then_recovers(
    cluster: RedisClusterServers, cache: RedisCache
) -> None:
    assert await round_trip_all(cache, b"before")
    victim = cluster.master_indexes()[0]
    cluster.kill_node(victim)
    try:
        # Every call during the failover either works or fails fast; none hangs.
        recovered_after = await wait_until_serving(cache, FAILOVER_DEADLINE)
        assert cluster.role(victim) is None
        assert len(cluster.master_indexes()) == 3, "a replica should have been promoted"
        print(f"cache served every key again {recovered_after:.1f} s after killing node {victim}")
    finally:
        cluster.start_node(victim)
    cluster.wait_healthy(60)
    assert cluster.role(victim) == "slave", "the old master rejoins as a replica"
    assert await round_trip_all(cache, b"after-rejoin")


async def test_hung_master_is_bounded_then_replaced(cluster: RedisClusterServers, cache: RedisCache) -> None:
    assert await round_trip_all(cache, b"before")
    victim = cluster.master_indexes()[0]
    cluster.pause_node(victim)
    try:
        # Reads from a frozen socket end at the socket timeout; then the cluster promotes a replica.
        recovered_after = await wait_until_serving(cache, FAILOVER_DEADLINE)
        print(f"cache served every key again {recovered_after:.1f} s after freezing node {victim}")
    finally:
        cluster.resume_node(victim)
    cluster.wait_healthy(60)
    assert await round_trip_all(cache, b"after-resume")


async def test_all_nodes_down_is_unavailable_quickly(cluster: RedisClusterServers, cache: RedisCache) -> None:
    assert await round_trip_all(cache, b"before")
    cluster.stop_all()
    try:
        for key in KEYS[:5]:
            ok, _ = await timed(cache.get(key))
            assert not ok
            ok, _ = await timed(cache.set(key, b"v", ttl_seconds=10))
            assert not ok
        start = time.monotonic()
        assert not await cache.ping()
        assert time.monotonic() - start < OPERATION_TIMEOUT + SLACK
    finally:
        cluster.start_all()
    await wait_until_serving(cache, FAILOVER_DEADLINE)


async def test_unreachable_url_is_unavailable_quickly() -> None:
    # Port 1 on loopback: nothing listens there, connections are refused at once.
    for cluster_mode in (True, False):
        cache = RedisCache("redis://127.0.0.1:1", cluster=cluster_mode, socket_timeout=SOCKET_TIMEOUT)
        try:
            with pytest.raises(CacheUnavailable):
                await timed_raising(cache.get("k"))
        finally:
            await cache.close()


async def timed_raising(call: Awaitable[object]) -> None:
    """Await a call that must raise, and must do so within the timeout bound."""
    start = time.monotonic()
    try:
        await call
    finally:
        assert time.monotonic() - start < OPERATION_TIMEOUT + SLACK


async def test_standalone_mode(redis_standalone: StandaloneRedis) -> None:
    cache = RedisCache(redis_standalone.url, cluster=False, prefix="solo:", socket_timeout=SOCKET_TIMEOUT)
    try:
        assert await cache.ping()
        await cache.set("k", b"standalone", ttl_seconds=30)
        assert await cache.get("k") == b"standalone"
        await cache.set("gone", b"x", ttl_seconds=0.2)
        await asyncio.sleep(0.5)
        assert await cache.get("gone") is None
    finally:
        await cache.close()

"""Session-wide real servers for the integration tests (see servers.py for the process handling)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import servers


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[servers.RedisClusterServers]:
    """A six-node Redis Cluster (3 masters, 3 replicas) on loopback, deleted at session end."""
    with servers.running(servers.RedisClusterServers(servers.new_state_dir("qr-redis-"))) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_standalone(redis_cluster: servers.RedisClusterServers) -> Iterator[servers.StandaloneRedis]:
    """One non-cluster redis-server; depends on redis_cluster, whose script installs Redis."""
    with servers.running(servers.StandaloneRedis(servers.new_state_dir("qr-redis-single-"))) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_stack() -> Iterator[servers.PostgresStack]:
    """A PostgreSQL primary with two streaming replicas on loopback, deleted at session end."""
    with servers.running(
        servers.PostgresStack(servers.new_state_dir("qr-pg-", for_other_user=True))
    ) as stack:
        yield stack

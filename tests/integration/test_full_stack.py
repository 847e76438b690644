"""The service on Redis Cluster and PostgreSQL with two replicas, with the faults it must survive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from quantum_router.app import create_app
from quantum_router.db.models import Experience
from tests.conftest import login, make_settings
from tests.integration.servers import PostgresStack, RedisClusterServers

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _healthy_stack(redis_cluster: RedisClusterServers, postgres_stack: PostgresStack) -> None:
    """Every test starts with all servers up, whatever the previous one broke."""
    redis_cluster.start_all()
    redis_cluster.wait_healthy(120)
    postgres_stack.start_all()
    postgres_stack.wait_replicating(120)


@contextmanager
def stack_client(
    tmp_path: Path, redis: RedisClusterServers, pg: PostgresStack, **overrides: Any
) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path,
        database_url=pg.primary_url,
        database_replica_urls=pg.replica_urls,
        redis_url=redis.url,
        redis_cluster=True,
        cache_key_prefix=f"qr:test:{tmp_path.name}:",
        **overrides,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _body(i: int, tag: str) -> dict[str, Any]:
    return {"prompt": f"{tag} question {i}", "persona": "developer", "task_type": "chat"}


def test_health_and_execute_on_the_full_stack(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    with stack_client(tmp_path, redis_cluster, postgres_stack) as client:
        health = client.get("/v1/health").json()
        assert (health["status"], health["database"], health["cache_backend"]) == ("ok", "ok", "redis")
        auth = login(client)
        first = client.post("/v1/execute", json=_body(1, "stack"), headers=auth).json()
        second = client.post("/v1/execute", json=_body(1, "stack"), headers=auth).json()
        assert (first["cache"], second["cache"]) == ("miss", "hit")


def test_killing_a_redis_master_never_fails_a_request_and_hits_return(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    # The recovery loop below may send a few hundred requests while the cluster fails over; the
    # per-user rate limit is not what this test is about, so it must not answer 429 here.
    unlimited = {"rate_limit_burst": 10_000, "rate_limit_per_minute": 100_000}
    with stack_client(tmp_path, redis_cluster, postgres_stack, **unlimited) as client:
        auth = login(client)
        for i in range(10):  # warm the cache
            assert client.post("/v1/execute", json=_body(i, "kill"), headers=auth).status_code == 200
        redis_cluster.kill_node(redis_cluster.master_indexes()[0])
        statuses = [
            client.post("/v1/execute", json=_body(i % 10, "kill"), headers=auth).status_code
            for i in range(30)
        ]
        assert statuses == [200] * 30
        deadline = time.monotonic() + 60
        hits = 0
        while hits < 10 and time.monotonic() < deadline:
            responses = [client.post("/v1/execute", json=_body(i, "kill"), headers=auth) for i in range(10)]
            assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
            hits = sum(r.json()["cache"] == "hit" for r in responses)
            time.sleep(0.5)
        assert hits == 10, "the cache did not serve hits again after failover"


def test_all_of_redis_down_degrades_to_uncached_answers(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    with stack_client(tmp_path, redis_cluster, postgres_stack) as client:
        auth = login(client)
        redis_cluster.stop_all()
        responses = [client.post("/v1/execute", json=_body(1, "down"), headers=auth) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert {r.json()["cache"] for r in responses} == {"miss"}
        health = client.get("/v1/health")
        assert health.status_code == 200
        assert (health.json()["status"], health.json()["cache"]) == ("degraded", "degraded")
        assert "qr_cache_errors_total" in client.get("/metrics").text


def test_reads_move_off_a_stopped_replica(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    with stack_client(tmp_path, redis_cluster, postgres_stack, db_read_your_writes_seconds=0) as client:
        auth = login(client)
        client.post("/v1/execute", json=_body(1, "replica"), headers=auth)
        postgres_stack.stop_node("replica1")
        for _ in range(10):
            response = client.get("/v1/experiences", headers=auth)
            assert response.status_code == 200
        stats = client.app.state.services.db.pool_stats  # type: ignore[attr-defined]
        assert stats.total["replica1"] + stats.total["replica0"] >= 10


def test_stopping_the_primary_refuses_writes_with_503_and_loses_nothing_acknowledged(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    # Acknowledged on commit; queued experiences ride out the outage (test_experience_writer.py).
    with stack_client(tmp_path, redis_cluster, postgres_stack, experience_acknowledge="commit") as client:
        auth = login(client)
        acknowledged = []
        for i in range(5):
            response = client.post("/v1/execute", json=_body(i, "primary"), headers=auth)
            assert response.status_code == 200
            acknowledged.append(response.json()["experience_id"])
        rated = client.post(
            "/v1/feedback", json={"experience_id": acknowledged[0], "rating": 5}, headers=auth
        )
        assert rated.status_code == 200
        postgres_stack.stop_node("primary")
        started = time.monotonic()
        refused = client.post(
            "/v1/execute", json={**_body(99, "primary"), "options": {"bypass_cache": True}}, headers=auth
        )
        assert refused.status_code == 503
        assert refused.json()["reason"] == "database_unavailable"
        assert int(refused.headers["retry-after"]) > 0
        assert time.monotonic() - started < 10
        assert client.get("/v1/health").status_code == 503
        postgres_stack.start_node("primary")
        services = client.app.state.services  # type: ignore[attr-defined]

        async def _stored() -> dict[str, float | None]:
            async with services.db.write_session() as session:
                rows = await session.execute(
                    select(Experience.id, Experience.feedback_rating).where(Experience.id.in_(acknowledged))
                )
                return {row[0]: row[1] for row in rows}

        stored = client.portal.call(_stored)  # type: ignore[union-attr]
        assert set(stored) == set(acknowledged)
        assert stored[acknowledged[0]] == 5.0


def test_a_user_reads_their_own_write_while_replicas_lag(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    async def replay(action: str) -> None:
        for name in ("replica1", "replica2"):
            conn = await asyncpg.connect(postgres_stack.superuser_dsn(name))
            await conn.execute(f"SELECT pg_wal_replay_{action}()")
            await conn.close()

    asyncio.run(replay("pause"))
    try:
        for window, expect_seen in ((10.0, True), (0.0, False)):
            with stack_client(
                tmp_path, redis_cluster, postgres_stack, db_read_your_writes_seconds=window
            ) as client:
                auth = login(client)
                written = client.post("/v1/execute", json=_body(int(window), "lag"), headers=auth).json()
                seen = [e["experience_id"] for e in client.get("/v1/experiences", headers=auth).json()]
                # With the window off, the lagging replica cannot have the row: proof the lag is real.
                assert (written["experience_id"] in seen) is expect_seen
    finally:
        asyncio.run(replay("resume"))


def test_an_exhausted_pool_or_a_blocked_table_answers_503_in_time(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    overrides = {
        "db_pool_size": 1,
        "db_max_overflow": 0,
        "db_pool_timeout_seconds": 0.5,
        "db_statement_timeout_seconds": 1.0,
        "experience_acknowledge": "commit",
    }
    with stack_client(tmp_path, redis_cluster, postgres_stack, **overrides) as client:
        auth = login(client)
        services = client.app.state.services  # type: ignore[attr-defined]
        body = {**_body(1, "pool"), "options": {"bypass_cache": True}}
        held = client.portal.call(services.db.primary.connect().start)  # type: ignore[union-attr]
        started = time.monotonic()
        response = client.post("/v1/execute", json=body, headers=auth)
        assert response.status_code == 503
        assert time.monotonic() - started < 5
        client.portal.call(held.close)  # type: ignore[union-attr]

        async def lock() -> asyncpg.Connection:
            conn = await asyncpg.connect(postgres_stack.superuser_dsn("primary"))
            await conn.execute("BEGIN; LOCK TABLE experiences IN ACCESS EXCLUSIVE MODE")
            return conn

        locker = client.portal.call(lock)  # type: ignore[union-attr]
        try:
            started = time.monotonic()
            response = client.post("/v1/execute", json=body, headers=auth)
            assert response.status_code == 503
            assert time.monotonic() - started < 5
        finally:
            client.portal.call(locker.close)  # type: ignore[union-attr]
        assert client.post("/v1/execute", json=body, headers=auth).status_code == 200


def test_rate_limits_are_shared_through_redis_and_survive_its_outage(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    limits = {"rate_limit_burst": 3, "rate_limit_per_minute": 6}
    with stack_client(tmp_path, redis_cluster, postgres_stack, **limits) as first, \
            stack_client(tmp_path, redis_cluster, postgres_stack, **limits) as second:  # fmt: skip
        auth = login(first)  # the same admin user on both replicas of the service
        body = _body(1, "ratelimit")
        codes = [client.post("/v1/execute", json=body, headers=auth).status_code
                 for client in (first, second, first, second)]  # fmt: skip
        # One bucket across both service replicas: the fourth request is refused wherever it lands.
        assert codes == [200, 200, 200, 429]
        redis_cluster.stop_all()
        # Without Redis each replica falls back to its own bucket instead of refusing everyone.
        assert second.post("/v1/execute", json=body, headers=auth).status_code == 200


def test_a_policy_published_through_redis_reaches_a_replica_while_the_database_is_down(
    tmp_path: Path, redis_cluster: RedisClusterServers, postgres_stack: PostgresStack
) -> None:
    from quantum_router.policy_store import publish_policy
    from tests.api.test_policy_reload import _always

    with stack_client(tmp_path, redis_cluster, postgres_stack) as publisher, \
            stack_client(tmp_path, redis_cluster, postgres_stack) as replica:  # fmt: skip
        published = publisher.app.state.services  # type: ignore[attr-defined]
        version = f"redis-{tmp_path.name}"
        policy = _always(published.policies.current, "cheap", version)
        publisher.portal.call(publish_policy, published.db, policy, published.cache)  # type: ignore[union-attr]
        postgres_stack.stop_node("primary")
        # The replica's next poll, with the database gone: Redis alone must carry the new policy. (Its own
        # poller's first round, at start, may have found it in Redis already, on a slow machine.)
        services = replica.app.state.services  # type: ignore[attr-defined]
        if services.policies.current.version != version:
            assert replica.portal.call(services.policies.refresh, services.db, services.cache)  # type: ignore[union-attr]
        assert replica.get("/v1/capabilities").json()["policy_version"] == version

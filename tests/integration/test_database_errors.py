"""PostgreSQL's refusals of a healthy connection (SQLSTATE 57P03, 57014, 25006, 53300 and kin) are outages,
not bugs: 503 with Retry-After, and reads move on to the next replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError, IntegrityError

from quantum_router.app import create_app
from quantum_router.db.engine import create_engine
from quantum_router.db.errors import unavailable_reason
from tests.conftest import login, make_settings
from tests.integration.servers import PostgresStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

_BODY = {
    "prompt": "db errors",
    "persona": "developer",
    "task_type": "chat",
    "options": {"bypass_cache": True},
}


@pytest.fixture(autouse=True)
def _healthy(postgres_stack: PostgresStack) -> None:
    postgres_stack.start_all()
    postgres_stack.wait_replicating(120)


@contextmanager
def _client(tmp_path: Path, pg: PostgresStack, **overrides: Any) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, database_url=pg.primary_url, database_replica_urls=pg.replica_urls, **overrides
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def test_a_primary_address_that_reaches_a_read_only_server_is_503(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    # What a failover looks like from a replica of the service: the primary's address reaches a standby.
    # Acknowledged on commit: an execute needs the database (queued experiences ride the outage out).
    with _client(tmp_path, postgres_stack, experience_acknowledge="commit") as client:
        auth = login(client)
        assert client.get("/v1/jobs/none", headers=auth).status_code == 404  # caches the token's user
        services = client.app.state.services  # type: ignore[attr-defined]
        standby = create_engine(postgres_stack.replica_urls[0], services.settings)
        services.db.primary = standby
        services.db.write_session.configure(bind=standby)
        response = client.post("/v1/execute", json=_BODY, headers=auth)
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "database_unavailable"
        assert "read-only (25006)" in response.json()["detail"]
        assert int(response.headers["retry-after"]) >= 1


def test_a_replica_with_no_connection_slot_left_sends_reads_to_the_next(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    async def fill_slots(url: str) -> list[asyncpg.Connection]:
        held: list[asyncpg.Connection] = []
        while len(held) < 200:
            try:
                held.append(await asyncpg.connect(_plain(url)))
            except asyncpg.TooManyConnectionsError:
                return held
        raise AssertionError("the replica never ran out of connection slots")

    with _client(tmp_path, postgres_stack, db_read_your_writes_seconds=0) as client:
        auth = login(client)
        assert client.post("/v1/execute", json=_BODY, headers=auth).status_code == 200
        portal = client.portal  # type: ignore[union-attr]
        services = client.app.state.services  # type: ignore[attr-defined]
        portal.call(services.db.replicas[0].dispose)  # no pooled connection may dodge the refusal
        held = portal.call(fill_slots, postgres_stack.replica_urls[0])
        try:
            codes = [client.get("/v1/experiences", headers=auth).status_code for _ in range(6)]
        finally:
            for conn in held:
                portal.call(conn.close)
        assert codes == [200] * 6
        stats = services.db.pool_stats
        assert stats.total["replica1"] >= 3, "the other replica did not take over the reads"


def test_a_replica_that_is_not_accepting_connections_yet_sends_reads_to_the_next(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    # With hot standby off a standby answers every connection as one starting up does: 57P03.
    auto_conf = postgres_stack.state_dir / "replica2" / "postgresql.auto.conf"
    original = auto_conf.read_text()
    auto_conf.write_text(original + "hot_standby = off\n")
    try:
        postgres_stack.stop_node("replica2")
        postgres_stack.start_node("replica2")
        with _client(tmp_path, postgres_stack, db_read_your_writes_seconds=0) as client:
            auth = login(client)
            codes = [client.get("/v1/experiences", headers=auth).status_code for _ in range(6)]
            stats = client.app.state.services.db.pool_stats  # type: ignore[attr-defined]
        assert codes == [200] * 6
        assert stats.total["replica0"] >= 3, "the other replica did not take over the reads"
    finally:
        auto_conf.write_text(original)
        postgres_stack.stop_node("replica2")
        postgres_stack.start_node("replica2")
        postgres_stack.wait_replicating(120)


def test_a_statement_timeout_is_503_after_every_replica_and_the_primary_were_tried(
    tmp_path: Path, postgres_stack: PostgresStack
) -> None:
    with _client(
        tmp_path, postgres_stack, db_statement_timeout_seconds=1.0, db_read_your_writes_seconds=0
    ) as client:
        auth = login(client)
        assert client.get("/v1/experiences", headers=auth).status_code == 200
        portal = client.portal  # type: ignore[union-attr]

        async def lock() -> asyncpg.Connection:
            conn = await asyncpg.connect(postgres_stack.superuser_dsn("primary"))
            await conn.execute("BEGIN; LOCK TABLE experiences IN ACCESS EXCLUSIVE MODE")
            # The lock's WAL record goes to the replicas once flushed, and nothing commits meanwhile.
            flusher = await asyncpg.connect(postgres_stack.superuser_dsn("primary"))
            await flusher.execute("SELECT pg_switch_wal()")
            await flusher.close()
            return conn

        locker = portal.call(lock)  # the lock is replayed on the replicas too, blocking their reads
        try:
            time.sleep(1.0)
            started = time.monotonic()
            response = client.get("/v1/experiences", headers=auth)
            elapsed = time.monotonic() - started
        finally:
            portal.call(locker.close)
        assert response.status_code == 503, response.text
        assert "statement timeout (57014)" in response.json()["detail"]
        assert response.headers["retry-after"]
        assert elapsed < 3 * 1.0 + 3, "each of the three servers gets one statement timeout, no more"
        assert client.get("/v1/experiences", headers=auth).status_code == 200


def test_bugs_keep_their_error_and_outages_are_recognised_by_sqlstate() -> None:
    class Orig(Exception):
        def __init__(self, code: str) -> None:
            super().__init__(code)
            self.sqlstate = code

    for code in ("57P03", "57014", "25006", "53300", "08006"):
        assert unavailable_reason(DBAPIError("SELECT 1", {}, Orig(code))) is not None, code
    assert unavailable_reason(IntegrityError("INSERT", {}, Orig("23505"))) is None
    assert unavailable_reason(DBAPIError("SELECT", {}, Orig("42601"))) is None

"""Migrations on a real PostgreSQL: replicas that start together on a fresh database take turns."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url

from quantum_router.db.engine import create_engine
from quantum_router.db.migrate import MIGRATION_LOCK_KEY, MigrationLockTimeout, alembic_config, upgrade
from tests.conftest import make_settings
from tests.integration.servers import PostgresStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Replicas of one Deployment plus the migration Job, all starting at once.
STARTING_PROCESSES = 4


@pytest.fixture
def fresh_database(postgres_stack: PostgresStack) -> Iterator[str]:
    """An empty database owned by the service's role on the primary; its asyncpg URL. Dropped after."""
    postgres_stack.start_all()
    name = f"qr_migrate_{uuid.uuid4().hex[:12]}"
    admin = postgres_stack.superuser_dsn("primary")

    async def _sql(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    owner = make_url(postgres_stack.primary_url).username
    asyncio.run(_sql(f'CREATE DATABASE {name} OWNER "{owner}"'))
    try:
        yield make_url(postgres_stack.primary_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _start_up(url: str, tmp_path: Path, ready: BarrierType) -> None:
    """What every replica does first: open the service's engine and migrate."""
    engine = create_engine(url, make_settings(tmp_path, database_url=url))
    try:
        async with engine.connect():
            pass  # connected and pooled, so the upgrades below start within a few milliseconds
        ready.wait(60)
        await upgrade(engine)
    finally:
        await engine.dispose()


def replica(url: str, tmp_path: Path, ready: BarrierType) -> None:
    """One starting replica, in its own process (Alembic's context is global to a process)."""
    asyncio.run(_start_up(url, tmp_path, ready))


async def _versions(url: str, tmp_path: Path) -> list[str]:
    engine = create_engine(url, make_settings(tmp_path, database_url=url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return [str(row[0]) for row in rows]
    finally:
        await engine.dispose()


def test_processes_starting_together_on_a_fresh_database_all_migrate(
    fresh_database: str, tmp_path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(STARTING_PROCESSES)
    processes = [
        spawn.Process(target=replica, args=(fresh_database, tmp_path, ready))
        for _ in range(STARTING_PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    try:
        assert [process.exitcode for process in processes] == [0] * STARTING_PROCESSES
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert asyncio.run(_versions(fresh_database, tmp_path)) == [head]


async def test_an_upgrade_waits_for_the_lock_holder(
    fresh_database: str, postgres_stack: PostgresStack, tmp_path: Path
) -> None:
    admin_dsn = postgres_stack.superuser_dsn("primary")
    holder = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + "/" + make_url(fresh_database).database)
    engine = create_engine(fresh_database, make_settings(tmp_path, database_url=fresh_database))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        with pytest.raises(MigrationLockTimeout):
            await upgrade(engine, lock_wait_seconds=0.5)
        waiting = asyncio.create_task(upgrade(engine))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await asyncio.wait_for(waiting, 60)
    finally:
        await holder.close()
        await engine.dispose()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert await _versions(fresh_database, tmp_path) == [head]

"""Apply Alembic migrations programmatically, on the service's own async engine.

On PostgreSQL the upgrade runs under a session advisory lock, so replicas (and the migration Job) that
start together on a fresh database take turns instead of racing to create the same tables: the first
migrates, the others wait, then find the schema at head and do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"

# One fixed key for every Quantum Router database: the bytes of "QRmigrat" as a signed 64-bit integer.
MIGRATION_LOCK_KEY = 0x51526D6967726174
# How long a starting replica waits for another one's migration before giving up (and being restarted).
MIGRATION_LOCK_WAIT_SECONDS = 600.0
_LOCK_POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


class MigrationLockTimeout(TimeoutError):
    """Another process held the migration lock for longer than we wait."""


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def _acquire(conn: AsyncConnection, wait_seconds: float) -> None:
    # pg_try_advisory_lock in a loop rather than a blocking pg_advisory_lock: the engine's statement
    # timeout (and asyncpg's command timeout) would cut a long wait short with a confusing error.
    deadline = time.monotonic() + wait_seconds
    waiting = False
    while True:
        locked = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await conn.commit()  # the lock belongs to the session; do not keep a transaction open meanwhile
        if locked:
            return
        if time.monotonic() >= deadline:
            raise MigrationLockTimeout(f"another process held the migration lock for {wait_seconds:.0f} s")
        if not waiting:
            log.info("waiting for another process to finish migrating the database")
            waiting = True
        await asyncio.sleep(_LOCK_POLL_SECONDS)


async def _release(conn: AsyncConnection) -> None:
    # Unlocking a lock this session does not hold (an interrupted wait) only draws a server warning.
    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    await conn.commit()


async def upgrade(
    engine: AsyncEngine, revision: str = "head", lock_wait_seconds: float = MIGRATION_LOCK_WAIT_SECONDS
) -> None:
    """Bring the schema to ``revision``; on PostgreSQL one process at a time (see the module docstring)."""

    def _run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with engine.connect() as conn:
        # SQLite serialises writers itself, and its file is never shared by several hosts.
        locking = conn.dialect.name == "postgresql"
        try:
            if locking:
                await _acquire(conn, lock_wait_seconds)
            async with conn.begin():
                await conn.run_sync(_run)
        finally:
            # Also after a failure: a pooled connection must not keep the lock. A broken connection's
            # session, and its lock, end with it.
            if locking and not conn.invalidated:
                await _release(conn)


async def autogenerate(engine: AsyncEngine, message: str) -> None:
    """Write a new revision from the difference between the models and the database (developer tool)."""

    def _run(connection: Connection) -> None:
        command.revision(alembic_config(connection), message=message, autogenerate=True)

    async with engine.begin() as conn:
        await conn.run_sync(_run)

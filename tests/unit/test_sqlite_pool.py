"""The SQLite pool skips pre-ping and the rollback after a commit; work left uncommitted still goes away."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database


async def _usernames(db: Database) -> list[str]:
    async with db.primary.connect() as conn:
        return list((await conn.execute(text("SELECT username FROM users ORDER BY username"))).scalars())


async def test_a_connection_returned_mid_transaction_is_rolled_back_and_does_not_lock(db: Database) -> None:
    async with db.primary.connect() as conn:
        raw = await conn.get_raw_connection()
        sqlite = raw.driver_connection
        assert sqlite is not None
        # Behind SQLAlchemy's back, as a bug or a cancelled request might leave it: an open write transaction.
        await sqlite.execute("BEGIN IMMEDIATE")
        await sqlite.execute(
            "INSERT INTO users (id, username, password_hash, roles, disabled, created_at) "
            "VALUES ('u1', 'ghost', 'x', '[]', 0, '2025-01-01 00:00:00')"
        )
        assert sqlite.in_transaction

    async def _add(session: AsyncSession) -> None:
        await store.add_user(session, "alice", "unused", ["user"])

    # With the write lock still held, this would wait for the busy timeout and fail with "database is locked".
    await db.write(_add)
    assert await _usernames(db) == ["alice"]


async def test_committed_writes_are_kept_across_pooled_connections(db: Database) -> None:
    for name in ("bob", "carol"):

        async def _add(session: AsyncSession, name: str = name) -> None:
            await store.add_user(session, name, "unused", ["user"])

        await db.write(_add)
    assert await _usernames(db) == ["bob", "carol"]

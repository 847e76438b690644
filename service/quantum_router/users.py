"""User and API-key management, shared by the service's bootstrap and the CLI."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.auth.passwords import hash_password
from quantum_router.auth.tokens import new_api_key
from quantum_router.db import store
from quantum_router.db.engine import Database


class UserExists(Exception):
    """A user with that name already exists."""


class UnknownUser(Exception):
    """No user with that name."""


async def create_user(db: Database, username: str, password: str, roles: list[str]) -> str:
    """Create a user; returns its id."""
    password_hash = await asyncio.to_thread(hash_password, password)

    async def _create(session: AsyncSession) -> str:
        if await store.user_by_name(session, username) is not None:
            raise UserExists(username)
        return (await store.add_user(session, username, password_hash, roles)).id

    return await db.write(_create)


async def ensure_admin(db: Database, username: str, password: str) -> bool:
    """Create the admin user on first start; True when it was created."""
    try:
        await create_user(db, username, password, ["admin"])
    except UserExists:
        return False
    return True


async def create_api_key(db: Database, username: str, name: str) -> str:
    """Create an API key for ``username``; returns the full key (shown once, never stored)."""
    key, prefix, digest = new_api_key()

    async def _create(session: AsyncSession) -> None:
        user = await store.user_by_name(session, username)
        if user is None:
            raise UnknownUser(username)
        await store.add_api_key(session, user.id, name, prefix, digest)

    await db.write(_create)
    return key

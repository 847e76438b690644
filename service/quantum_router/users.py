"""User and API-key management, shared by the service's bootstrap and the CLI."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.auth.passwords import hash_password, verify_password
from quantum_router.auth.tokens import API_KEY_PREFIX, InvalidCredentials, new_api_key, parse_api_key
from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.models import User


class UserExists(Exception):
    """A user with that name already exists."""


class UnknownUser(Exception):
    """No user with that name."""


class UnknownApiKey(Exception):
    """No API key with that prefix."""


async def create_user(db: Database, username: str, password: str, roles: list[str]) -> str:
    """Create a user; returns its id."""
    password_hash = await asyncio.to_thread(hash_password, password)

    async def _create(session: AsyncSession) -> str:
        if await store.user_by_name(session, username) is not None:
            raise UserExists(username)
        return (await store.add_user(session, username, password_hash, roles)).id

    return await db.write(_create)


async def ensure_admin(db: Database, username: str, password: str) -> str:
    """Make ``password`` the admin's: ``created`` on first start, ``rotated`` when the admin had another
    password (its bearer tokens then stop working), else ``unchanged``."""
    try:
        await create_user(db, username, password, ["admin"])
    except UserExists:
        pass
    else:
        return "created"

    async def _find(session: AsyncSession) -> User | None:
        return await store.user_by_name(session, username)

    admin = await db.read_primary(_find)
    if admin is not None and await asyncio.to_thread(verify_password, admin.password_hash, password):
        return "unchanged"
    password_hash = await asyncio.to_thread(hash_password, password)

    async def _rotate(session: AsyncSession) -> None:
        user = await store.user_by_name(session, username)
        if user is None:
            raise UnknownUser(username)
        await store.set_password(session, user, password_hash)

    await db.write(_rotate)
    return "rotated"


async def set_user_disabled(db: Database, username: str, disabled: bool) -> None:
    """Disable (or enable again) a user: login, bearer tokens and API keys all stop working."""

    async def _set(session: AsyncSession) -> None:
        user = await store.user_by_name(session, username)
        if user is None:
            raise UnknownUser(username)
        await store.set_disabled(session, user, disabled)

    await db.write(_set)


async def list_api_keys(db: Database, username: str) -> list[tuple[str, str, datetime, bool]]:
    """``(prefix, name, created_at, revoked)`` of each of a user's keys (the secrets are not stored)."""

    async def _list(session: AsyncSession) -> list[tuple[str, str, datetime, bool]]:
        user = await store.user_by_name(session, username)
        if user is None:
            raise UnknownUser(username)
        keys = await store.api_keys_of(session, user.id)
        return [(k.prefix, k.name, k.created_at, k.revoked) for k in keys]

    return await db.read_primary(_list)


async def revoke_api_key(db: Database, key_or_prefix: str) -> None:
    """Revoke a key given whole or by its prefix (the 12 characters after ``qr_``).

    :raises UnknownApiKey: no key has that prefix.
    """
    prefix = key_or_prefix
    if key_or_prefix.startswith(API_KEY_PREFIX):
        try:
            prefix = parse_api_key(key_or_prefix)
        except InvalidCredentials as exc:
            raise UnknownApiKey(key_or_prefix) from exc

    async def _revoke(session: AsyncSession) -> None:
        if not await store.revoke_api_key(session, prefix):
            raise UnknownApiKey(prefix)

    await db.write(_revoke)


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

"""Engines and sessions: writes go to the primary; lag-tolerant reads round-robin over healthy replicas."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import PoolResetState

from quantum_router.db.errors import CANDIDATE_ERRORS, sqlstate, unavailable_reason
from quantum_router.db.pool import PoolStats, measured_pool
from quantum_router.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# asyncpg's own timeout comes this much after the server's statement_timeout: the server cancels first and
# says so (57014) on a connection that stays usable; asyncpg's is the backstop for a server that went silent.
_CLIENT_TIMEOUT_MARGIN_SECONDS = 1.0


class DatabaseUnavailable(Exception):
    """The database cannot serve the request now; the client may retry later."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; NORMAL sync is durable across process crashes in WAL mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    # Every call on an aiosqlite connection is a round trip to its thread that wakes the event loop. The
    # pool's usual rollback-on-return costs one even after a commit; roll back only a transaction still open.
    if state.asyncio_safe and not state.terminate_only and dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def create_engine(
    url: str, settings: Settings, stats: PoolStats | None = None, name: str = "primary"
) -> AsyncEngine:
    """An async engine with bounded, measured pools; servers' connections are pinged before use, SQLite files
    get WAL and their folder."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        # No pre-ping: a local file has no connection to lose, and the ping is four round trips to aiosqlite's
        # thread per checkout. The rollback on return is _sqlite_reset's, only when a transaction is open.
        kwargs["pool_reset_on_return"] = None
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["poolclass"] = measured_pool(stats or PoolStats(), name)
    else:
        timeout = settings.db_statement_timeout_seconds
        kwargs.update(
            pool_pre_ping=True,
            poolclass=measured_pool(stats or PoolStats(), name),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_args={
                "timeout": timeout,
                "command_timeout": timeout + _CLIENT_TIMEOUT_MARGIN_SECONDS,
                "server_settings": {"statement_timeout": str(int(timeout * 1000))},
            },
        )
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "reset", _sqlite_reset)
    return engine


class Database:
    """The primary engine plus zero or more read replicas."""

    def __init__(self, settings: Settings) -> None:
        self.pool_stats = PoolStats()
        self.primary = create_engine(settings.database_url, settings, self.pool_stats, "primary")
        self.replicas = [
            create_engine(url, settings, self.pool_stats, f"replica{i}")
            for i, url in enumerate(settings.database_replica_urls)
        ]
        self.write_session = async_sessionmaker(self.primary, expire_on_commit=False)
        self._replica_sessions = [async_sessionmaker(e, expire_on_commit=False) for e in self.replicas]
        self._down_until = [0.0] * len(self.replicas)
        self._retry = settings.db_replica_retry_seconds
        self._next = itertools.count()
        # Principals who wrote recently, and until when their reads stay on the primary.
        self._pinned: dict[str, float] = {}
        self._pin_seconds = settings.db_read_your_writes_seconds

    async def write(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        owner: str | None = None,
        owners: set[str] | frozenset[str] = frozenset(),
    ) -> T:
        """Run ``work`` in a transaction on the primary and commit it; the reads of ``owner`` (or of each of
        ``owners``) then stay on the primary for a while, so replica lag never hides their own write."""
        try:
            async with self.write_session() as session, session.begin():
                result = await work(session)
        except CANDIDATE_ERRORS as exc:
            await self._primary_failed(exc)
            raise
        if self.replicas:
            for who in {owner, *owners} - {None}:
                assert who is not None
                self._pin(who)
        return result

    def _pin(self, owner: str) -> None:
        now = time.monotonic()
        if len(self._pinned) > 100_000:
            self._pinned = {k: t for k, t in self._pinned.items() if t > now}
        self._pinned[owner] = now + self._pin_seconds

    async def read_primary(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Read on the primary (read-your-own-writes)."""
        try:
            async with self.write_session() as session:
                return await work(session)
        except CANDIDATE_ERRORS as exc:
            await self._primary_failed(exc)
            raise

    async def _primary_failed(self, exc: BaseException) -> None:
        """Raise DatabaseUnavailable when ``exc`` is an outage; return (the caller re-raises) for a bug."""
        reason = unavailable_reason(exc)
        if reason is None:
            return
        if sqlstate(exc) == "25006":
            # The primary's address now reaches a read-only server (a failover under way). Pooled connections
            # would keep reaching it and pass pre-ping: open new ones, which follow the address to the new
            # primary once it is promoted.
            await self.primary.dispose()
        raise DatabaseUnavailable(f"primary database unavailable: {reason}") from exc

    async def read(self, work: Callable[[AsyncSession], Awaitable[T]], owner: str | None = None) -> T:
        """Read on a healthy replica (round-robin), falling back to the primary when none answers.

        Reads of an ``owner`` who wrote within the read-your-writes window go to the primary."""
        now = time.monotonic()
        if owner is not None and self._pinned.get(owner, 0.0) > now:
            return await self.read_primary(work)
        n = len(self.replicas)
        start = next(self._next)
        for offset in range(n):
            i = (start + offset) % n
            if self._down_until[i] > now:
                continue
            try:
                async with self._replica_sessions[i]() as session:
                    return await work(session)
            except CANDIDATE_ERRORS as exc:
                reason = unavailable_reason(exc)
                if reason is None:
                    raise
                log.warning("replica %d unavailable (%s); trying the next", i, reason)
                self._down_until[i] = now + self._retry
        return await self.read_primary(work)

    async def ping(self) -> bool:
        """True when the primary answers ``SELECT 1``."""
        try:
            async with self.primary.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except CANDIDATE_ERRORS as exc:
            if unavailable_reason(exc) is None:
                raise
            return False

    async def dispose(self) -> None:
        """Close every pool."""
        for engine in [self.primary, *self.replicas]:
            await engine.dispose()

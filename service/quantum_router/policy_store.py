"""The policy being served, published policies in the database, and hot reload without a restart."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.policy import Policy, PolicyFormatError, policy_from_bytes

log = logging.getLogger(__name__)


class PolicyStore:
    """Holds the current policy; replacing it is one reference assignment, so readers never see a mix."""

    def __init__(self, initial: Policy) -> None:
        self._current = initial

    @property
    def current(self) -> Policy:
        """The policy to route with now."""
        return self._current

    def swap(self, policy: Policy) -> None:
        """Serve ``policy`` from the next request on."""
        self._current = policy

    async def refresh(self, db: Database) -> bool:
        """Load the newest published policy if it differs from the current one; True when swapped."""
        version = await db.read_primary(store.latest_policy_version)
        if version is None or version == self._current.version:
            return False
        artifact = await db.read_primary(store.latest_policy)
        if artifact is None:
            return False
        try:
            policy = policy_from_bytes(artifact.data)
        except PolicyFormatError as exc:
            log.error("published policy %s is invalid, keeping %s: %s", version, self._current.version, exc)
            return False
        self.swap(policy)
        log.info("now serving policy %s", policy.version)
        return True

    async def poll(self, db: Database, interval_seconds: float) -> None:
        """Refresh forever (cancel the task to stop); database outages only delay the next check."""
        while True:
            try:
                await self.refresh(db)
            except DatabaseUnavailable as exc:
                log.warning("policy poll skipped: %s", exc)
            await asyncio.sleep(interval_seconds)


async def publish_policy(db: Database, policy: Policy) -> None:
    """Store ``policy`` so every replica picks it up at its next poll."""
    data = policy.to_bytes()
    policy_from_bytes(data)  # refuse to publish what replicas could not load

    async def _add(session: AsyncSession) -> None:
        await store.add_policy(session, policy.version, data)

    await db.write(_add)

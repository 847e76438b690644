"""Asynchronous executions: a database row per job and an asyncio task that fills in its result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.models import Job
from quantum_router.execution import ExecuteRequest

log = logging.getLogger(__name__)

# Maps an exception raised by an execution to (HTTP status, detail) for the job's error field.
ErrorMapper = Callable[[Exception], tuple[int, str]]


class JobRunner:
    """Starts background executions and keeps a reference to each task until it finishes."""

    def __init__(
        self,
        db: Database,
        execute: Callable[[str, ExecuteRequest], Awaitable[dict[str, Any]]],
        describe_error: ErrorMapper,
    ) -> None:
        self._db = db
        self._execute = execute
        self._describe = describe_error
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, user_id: str, request: ExecuteRequest) -> str:
        """Persist a pending job and start it; returns the job id."""

        async def _add(session: AsyncSession) -> str:
            return (await store.add_job(session, user_id, asdict(request))).id

        job_id = await self._db.write(_add)
        task = asyncio.create_task(self._run(job_id, user_id, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job_id

    async def _run(self, job_id: str, user_id: str, request: ExecuteRequest) -> None:
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            result = await self._execute(user_id, request)
        except Exception as exc:  # every failure must end up in the job row, not in a lost task
            status, detail = self._describe(exc)
            error = {"status": status, "detail": detail}

        async def _finish(session: AsyncSession) -> None:
            await store.finish_job(session, job_id, result, error)

        try:
            await self._db.write(_finish)
        except DatabaseUnavailable:
            log.error("job %s finished but its result could not be stored", job_id)

    async def get(self, job_id: str) -> Job | None:
        """The job row, read on the primary so a fresh job is visible to its submitter."""

        async def _get(session: AsyncSession) -> Job | None:
            return await store.job_by_id(session, job_id)

        return await self._db.read_primary(_get)

    async def close(self) -> None:
        """Cancel running jobs; the next start marks them failed."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

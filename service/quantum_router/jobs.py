"""Asynchronous executions: a database row per job and an asyncio task that fills in its result.

Several replicas of the service share the jobs table, so a job belongs to the process running it
(``owner``), which renews the job's lease while it runs. Whichever replica notices a lease that lapsed
(its process died without a word) fails that job; a process that shuts down fails its own unfinished
jobs at once. No replica ever touches a job another live one is running.

A user may have a bounded number of jobs running at once; finished jobs are purged after the retention
period, and the prompt is never stored with a job (only its digest): the running task holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.models import Job, utcnow
from quantum_router.execution import ExecuteRequest

log = logging.getLogger(__name__)

# Maps an exception raised by an execution to (HTTP status, detail) for the job's error field.
ErrorMapper = Callable[[Exception], tuple[int, str]]
LAPSED = "interrupted: the replica running it stopped"
SHUT_DOWN = "interrupted: the replica running it shut down"


def process_identity() -> str:
    """This process among all replicas: host, pid and a random part (pids repeat across restarts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class TooManyJobs(Exception):
    """The user already has as many jobs running as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} asynchronous jobs are already running; wait for one to finish")
        self.limit = limit


def stored_request(request: ExecuteRequest) -> dict[str, Any]:
    """What a job row keeps of its request: everything but the prompt, which only its digest stands for."""
    fields = asdict(request)
    prompt = fields.pop("prompt")
    return {**fields, "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()}


class JobRunner:
    """Starts background executions and keeps a reference to each task until it finishes."""

    def __init__(
        self,
        db: Database,
        execute: Callable[[str, ExecuteRequest], Awaitable[dict[str, Any]]],
        describe_error: ErrorMapper,
        lease_seconds: float = 30.0,
        max_per_user: int = 10,
        retention_seconds: float = 86_400.0,
    ) -> None:
        self._db = db
        self._execute = execute
        self._describe = describe_error
        self._lease = lease_seconds
        self._max_per_user = max_per_user
        self._retention = retention_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self.owner = process_identity()
        self._stopping = asyncio.Event()
        self._maintenance: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the maintenance rounds (:meth:`maintain`); :meth:`close` stops them."""
        self._maintenance = asyncio.create_task(self.maintain())

    async def submit(self, user_id: str, request: ExecuteRequest) -> str:
        """Persist a pending job and start it; returns the job id.

        :raises TooManyJobs: the user has ``max_per_user`` jobs running. (Counted in the database, so across
            replicas; two submissions at the same instant on two replicas may both pass.)
        """

        async def _add(session: AsyncSession) -> str:
            if await store.pending_jobs_of(session, user_id) >= self._max_per_user:
                raise TooManyJobs(self._max_per_user)
            return (await store.add_job(session, user_id, stored_request(request), self.owner)).id

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

        async def _finish(session: AsyncSession) -> bool:
            return await store.finish_job(session, job_id, result, error)

        try:
            if not await self._db.write(_finish):
                log.warning(
                    "job %s had already been failed (its lease lapsed); its result is dropped", job_id
                )
        except DatabaseUnavailable:
            log.error("job %s finished but its result could not be stored", job_id)

    async def get(self, job_id: str) -> Job | None:
        """The job row, read on the primary so a fresh job is visible to its submitter."""

        async def _get(session: AsyncSession) -> Job | None:
            return await store.job_by_id(session, job_id)

        return await self._db.read_primary(_get)

    async def maintain_once(self) -> None:
        """Renew the leases of this process's jobs, fail the jobs whose lease lapsed, and purge the jobs
        that ended longer ago than the retention period."""
        # The application's clock, not the database's: replicas' clocks agree (NTP) far better than the
        # lease needs, and it keeps the query the same on SQLite and PostgreSQL.
        now = utcnow()
        lease_cutoff = now - timedelta(seconds=self._lease)
        retention_cutoff = now - timedelta(seconds=self._retention)

        async def _maintain(session: AsyncSession) -> tuple[int, int]:
            if self._tasks:
                await store.renew_job_leases(session, self.owner)
            lapsed = await store.fail_jobs(session, LAPSED, lapsed_before=lease_cutoff)
            return lapsed, await store.purge_jobs(session, finished_before=retention_cutoff)

        lapsed, purged = await self._db.write(_maintain)
        if lapsed:
            log.warning("failed %d job(s) whose replica stopped without finishing them", lapsed)
        if purged:
            log.info("purged %d job(s) past the retention period", purged)

    async def maintain(self) -> None:
        """Run :meth:`maintain_once` every third of the lease until :meth:`close` (a failed round is
        logged). A round in progress is let finish rather than cancelled half-way through its write."""
        # (A purge that falls behind only keeps rows longer; it catches up on the next round.)
        while not self._stopping.is_set():
            try:
                await self.maintain_once()
            except Exception:  # the loop must outlive any one round, database outages included
                log.exception("job maintenance failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._lease / 3)

    async def close(self) -> None:
        """Stop maintenance, cancel running jobs and fail them at once (rather than when their lease
        lapses)."""
        self._stopping.set()
        if self._maintenance is not None:
            await self._maintenance
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

        async def _fail_own(session: AsyncSession) -> int:
            return await store.fail_jobs(session, SHUT_DOWN, owner=self.owner)

        try:
            await self._db.write(_fail_own)
        except DatabaseUnavailable:
            log.warning("could not fail this replica's unfinished jobs; their leases will lapse")

"""Experience rows written by one task, in batches: a group commit for SQLite and PostgreSQL alike.

Requests hand their row to a bounded queue and wait until the transaction that holds it has committed, so
an experience id in a response always names a stored row and nothing acknowledged is lost, crash or not.
While one batch commits, the rows that arrive meanwhile queue up and go out together in the next
transaction. Under load that turns many small transactions into few large ones, and on SQLite it leaves one
writer of experiences where there were many contending for the file's lock ("database is locked" after the
busy timeout). A full queue blocks the callers (back-pressure); nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.models import new_id
from quantum_router.metrics import Metrics

log = logging.getLogger(__name__)

_Pending = tuple[dict[str, Any], str, "asyncio.Future[str]"]


class WriterClosed(DatabaseUnavailable):
    """The writer was closed (the service is shutting down); the row was not written."""


class ExperienceWriter:
    """Queues experience rows and commits them in batches of at most ``max_batch``."""

    def __init__(self, db: Database, metrics: Metrics, max_batch: int, queue_size: int) -> None:
        self._db = db
        self._metrics = metrics
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writing task (on the running loop)."""
        self._task = asyncio.create_task(self._run(), name="experience-writer")

    async def add(self, row: dict[str, Any], owner: str) -> str:
        """Queue ``row`` (an ``Experience``'s columns) and return its id once it is committed.

        Raises :class:`DatabaseUnavailable` when its batch could not be written.
        """
        if self._closed:
            raise WriterClosed("the service is shutting down")
        row = {**row, "id": row.get("id") or new_id()}
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # Mark a failure as seen even when its caller has gone (no "exception never retrieved" noise).
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        await self._queue.put((row, owner, done))
        self._metrics.experience_queue_depth.set(self._queue.qsize())
        # Shielded: a caller that goes away (client disconnect) does not take its row out of the batch.
        return await asyncio.shield(done)

    async def close(self) -> None:
        """Write everything queued, then stop. Rows offered after this raise :class:`WriterClosed`."""
        self._closed = True
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._metrics.experience_queue_depth.set(self._queue.qsize())
            try:
                await self._flush(batch)
            except Exception:  # a bug here must not stop every later write; the callers got the error
                log.exception("experience batch failed")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _flush(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            await self._write([row for row, _, _ in batch], {owner for _, owner, _ in batch})
        except DatabaseUnavailable as exc:
            for _, _, done in batch:
                _settle(done, exc)
            return
        except Exception:
            # One bad row (say, its user was deleted meanwhile) must not fail the others: write them alone.
            log.warning("a batch of %d experiences failed; writing them one by one", len(batch))
            for row, owner, done in batch:
                try:
                    await self._write([row], {owner})
                except Exception as exc:
                    _settle(done, exc)
                else:
                    _settle(done, row["id"])
            return
        finally:
            self._metrics.experience_flush_seconds.observe(time.perf_counter() - started)
            self._metrics.experience_batch_size.observe(len(batch))
        for row, _, done in batch:
            _settle(done, row["id"])

    async def _write(self, rows: list[dict[str, Any]], owners: set[str]) -> None:
        async def _insert(session: AsyncSession) -> None:
            await store.add_experiences(session, rows)

        await self._db.write(_insert, owners=owners)


def _settle(done: asyncio.Future[str], outcome: str | BaseException) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)

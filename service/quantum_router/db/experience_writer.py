"""Experience rows written by one task, in batches: a group commit for SQLite and PostgreSQL alike.

Requests hand their row, with an id chosen beforehand, to a bounded queue. While one batch commits, the
rows that arrive meanwhile queue up and go out together in the next transaction. Under load that turns
many small transactions into a few large ones. On SQLite it also leaves one writer of experiences where
there were many contending for the file's lock ("database is locked" after the busy timeout). A full
queue blocks the callers (back-pressure); nothing is dropped to make room.

When a request is answered depends on ``acknowledge`` (``QR_EXPERIENCE_ACKNOWLEDGE``):

- ``queued`` (the default): once the row is queued. The commit leaves the request's critical path. A
  database outage does not lose rows: the batch is retried with backoff while new rows wait in the queue,
  and callers block once it is full. A clean shutdown writes everything queued (bounded by
  ``close(timeout)``). A crash of the process (SIGKILL, out of memory) loses the rows still queued: at
  most ``QR_EXPERIENCE_QUEUE_SIZE``; with the database keeping up, the traffic of the last
  ``QR_EXPERIENCE_LINGER_MS`` plus one commit. Each batch waits that long after its first row before it
  commits, so light traffic still shares transactions: every commit costs the event loop a fixed amount.
  Reads of the caller's own experiences (feedback, history) first wait for its queued rows.
- ``commit``: after the transaction holding the row has committed. Nothing acknowledged is ever lost, and
  a database outage answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.models import new_id, utcnow
from quantum_router.metrics import Metrics

log = logging.getLogger(__name__)

Acknowledge = Literal["queued", "commit"]
_Pending = tuple[dict[str, Any], str, "asyncio.Future[str]"]
_RETRY_FIRST_SECONDS = 0.1
_RETRY_MAX_SECONDS = 5.0


class WriterClosed(DatabaseUnavailable):
    """The writer was closed (the service is shutting down); the row was not written."""


class ExperienceWriter:
    """Queues experience rows and commits them in batches of at most ``max_batch``, ``insert_rows`` rows per
    INSERT (None: the whole batch in one)."""

    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        max_batch: int,
        queue_size: int,
        acknowledge: Acknowledge = "queued",
        linger_seconds: float = 0.0,
        insert_rows: int | None = None,
    ) -> None:
        self._db = db
        self._insert_rows = insert_rows or max_batch
        # Only while rows are acknowledged on queueing: with ``commit``, a wait here is the caller's wait.
        self._linger = linger_seconds if acknowledge == "queued" else 0.0
        self._metrics = metrics
        self._max_batch = max_batch
        self._acknowledge = acknowledge
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._by_owner: defaultdict[str, set[asyncio.Future[str]]] = defaultdict(set)
        self._by_id: dict[str, asyncio.Future[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._writing = 0  # rows taken off the queue and not yet settled

    def start(self) -> None:
        """Start the writing task (on the running loop)."""
        self._task = asyncio.create_task(self._run(), name="experience-writer")

    async def add(self, row: dict[str, Any], owner: str) -> str:
        """Queue ``row`` (an ``Experience``'s columns) and return its id: at once, or after its commit.

        With ``commit`` acknowledgement, raises :class:`DatabaseUnavailable` when its batch failed.
        """
        if self._closed:
            raise WriterClosed("the service is shutting down")
        # Stamped now, not at the commit, which may come a linger (or a database outage) later.
        row = {**row, "id": row.get("id") or new_id(), "created_at": row.get("created_at") or utcnow()}
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        pending = self._by_owner[owner]
        pending.add(done)
        row_id: str = row["id"]
        self._by_id[row_id] = done
        done.add_done_callback(lambda f: self._forget(owner, row_id, f))
        await self._queue.put((row, owner, done))
        self._metrics.experience_queue_depth.set(self._queue.qsize())
        if self._acknowledge == "queued":
            return str(row["id"])
        # Shielded: a caller that goes away (client disconnect) does not take its row out of the batch.
        return await asyncio.shield(done)

    async def settled(self, owner: str, row_id: str | None = None) -> None:
        """Wait until every row ``owner`` queued so far, and row ``row_id`` if it is queued, is written (or
        has failed)."""
        pending = list(self._by_owner.get(owner, ()))
        if row_id is not None and row_id in self._by_id:
            pending.append(self._by_id[row_id])
        if pending:
            await asyncio.gather(*(asyncio.shield(f) for f in pending), return_exceptions=True)

    async def flushed(self) -> None:
        """Wait until every row queued so far has been written or has failed (the queue is empty)."""
        await self._queue.join()

    async def close(self, drain_seconds: float = 30.0) -> None:
        """Write everything queued, then stop; rows offered after this raise :class:`WriterClosed`.

        If the database still refuses after ``drain_seconds``, the rows left are logged as lost."""
        self._closed = True
        if self._task is None:
            return
        try:
            async with asyncio.timeout(drain_seconds):
                await self._queue.join()
        except TimeoutError:
            log.error(
                "shutting down with %d experiences not written (database unavailable)", self._queue.qsize()
            )
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    def _forget(self, owner: str, row_id: str, done: asyncio.Future[str]) -> None:
        # Mark a failure as seen even when nobody awaits it (no "exception never retrieved" noise).
        if not done.cancelled():
            done.exception()
        self._by_id.pop(row_id, None)
        pending = self._by_owner.get(owner)
        if pending is not None:
            pending.discard(done)
            if not pending:
                del self._by_owner[owner]

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._linger and not self._closed:
                # Light traffic would otherwise commit one row per transaction, each costing the loop a
                # round trip to the driver; a short wait lets a few rows share it.
                await asyncio.sleep(self._linger)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._metrics.experience_queue_depth.set(self._queue.qsize())
            self._writing = len(batch)
            try:
                await self._flush(batch)
            except Exception:  # a bug here must not stop every later write; the callers got the error
                log.exception("experience batch failed")
            finally:
                self._writing = 0
                for _, _, done in batch:
                    _settle(done, WriterClosed("the experience writer stopped"))
                    self._queue.task_done()

    async def _flush(self, batch: list[_Pending]) -> None:
        delay = _RETRY_FIRST_SECONDS
        while True:
            started = time.perf_counter()
            try:
                await self._write([row for row, _, _ in batch], {owner for _, owner, _ in batch})
            except DatabaseUnavailable as exc:
                if self._acknowledge == "commit":
                    for _, _, done in batch:
                        _settle(done, exc)
                    return
                # Already acknowledged: keep the rows and try again; new rows wait (and block when full).
                log.warning(
                    "experience batch of %d not written (%s); retrying in %.1f s", len(batch), exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
                continue
            except Exception:
                # One bad row (its user deleted meanwhile, say) must not fail the others: write them alone.
                log.warning("a batch of %d experiences failed; writing them one by one", len(batch))
                await self._one_by_one(batch)
                return
            self._metrics.experience_flush_seconds.observe(time.perf_counter() - started)
            self._metrics.experience_batch_size.observe(len(batch))
            for row, _, done in batch:
                _settle(done, row["id"])
            return

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        for row, owner, done in batch:
            try:
                await self._write([row], {owner})
            except Exception as exc:
                log.error("experience %s not written: %s", row["id"], type(exc).__name__)
                _settle(done, exc)
            else:
                _settle(done, row["id"])

    async def _write(self, rows: list[dict[str, Any]], owners: set[str]) -> None:
        async def _insert(session: AsyncSession) -> None:
            # One transaction, a statement per slice: the rows' JSON encoding and bind processing run on the
            # event loop, and a whole batch in one statement would stall the requests in flight meanwhile.
            for start in range(0, len(rows), self._insert_rows):
                await store.add_experiences(session, rows[start : start + self._insert_rows])

        await self._db.write(_insert, owners=owners)


def _settle(done: asyncio.Future[str], outcome: str | BaseException) -> None:
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)

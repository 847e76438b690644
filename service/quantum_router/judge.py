"""A judge model grades a sample of answers after they were sent; its verdict becomes the logged quality.

Never on the request path: :meth:`Judge.submit` only schedules a task and returns. The tasks run at most
``QR_JUDGE_CONCURRENCY`` at a time (more wait in a bounded backlog; past it, a request is not judged), and
their spend stays under ``QR_JUDGE_MAX_USD_PER_HOUR`` (a call is skipped when its estimated cost would
exceed what the last hour left). A user's rating keeps precedence: a verdict never replaces one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.catalog import Catalog
from quantum_router.db import store
from quantum_router.db.engine import Database, DatabaseUnavailable
from quantum_router.db.experience_writer import ExperienceWriter
from quantum_router.metrics import Metrics
from quantum_router.providers.base import CompletionRequest, ProviderError, estimate_tokens
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.settings import Settings

log = logging.getLogger(__name__)

# The task type judge calls carry, so a provider (the simulated one) can tell a verdict from an answer.
JUDGE_TASK = "judge"
JUDGE_MAX_TOKENS = 8
_SCORE = re.compile(r"SCORE: (10|[0-9])")

_CRITERIA = {
    "code_generation": "Is the code correct, complete and idiomatic for what was asked?",
    "code_analysis": "Are the findings correct and relevant, with nothing important missed?",
    "architecture": "Is the design sound for the stated needs, with its trade-offs made clear?",
    "chat": "Is the reply correct, helpful and to the point?",
}
_DEFAULT_CRITERIA = "Is the answer correct and does it do what was asked?"


def rubric(task_type: str) -> str:
    """The judge's system prompt for a task type: the criteria and the one reply format accepted."""
    return (
        "You grade one answer to one request. "
        + _CRITERIA.get(task_type, _DEFAULT_CRITERIA)
        + " Reply with exactly one line, `SCORE: N`, N an integer from 0 (useless or wrong) to 10 (perfect),"
        " and nothing else."
    )


def judge_prompt(prompt: str, answer: str) -> str:
    """The user message of a judge call: the request and the answer, each in its own tags."""
    return f"<prompt>\n{prompt}\n</prompt>\n<answer>\n{answer}\n</answer>"


def parse_score(reply: str) -> float | None:
    """The verdict in [0, 1], or None unless the reply is exactly ``SCORE: N`` (0-10; surrounding space
    allowed): anything else is a judge that did not follow the rubric, not a score to guess at."""
    match = _SCORE.fullmatch(reply.strip())
    return int(match.group(1)) / 10 if match else None


class Budget:
    """USD spent in the last hour; a call is allowed only when its estimate fits under the limit."""

    def __init__(self, usd_per_hour: float) -> None:
        self._limit = usd_per_hour
        self._spent: deque[tuple[float, float]] = deque()

    def _total(self, now: float) -> float:
        while self._spent and self._spent[0][0] <= now - 3600:
            self._spent.popleft()
        return sum(usd for _, usd in self._spent)

    def reserve(self, usd: float, now: float) -> bool:
        """Book ``usd`` now if it fits under the hourly limit; False (nothing booked) if it does not."""
        if self._total(now) + usd > self._limit:
            return False
        self._spent.append((now, usd))
        return True

    def settle(self, reserved: float, actual: float, now: float) -> None:
        """Replace a reservation's estimate by what the call cost."""
        self._spent.append((now, actual - reserved))


@dataclass(frozen=True)
class JudgeTask:
    """What a verdict needs: the experience, whose it is, the request and answer, the reward's penalties."""

    experience_id: str
    user_id: str
    task_type: str
    prompt: str
    answer: str
    cost_penalty: float
    latency_penalty: float


class Judge:
    """Samples answers and grades them in background tasks."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        providers: ProviderRegistry,
        db: Database,
        experiences: ExperienceWriter,
        metrics: Metrics,
    ) -> None:
        if settings.judge_model is None:
            raise ValueError("no judge model configured")
        self.model = settings.judge_model
        self._price = catalog.model(self.model).cost_per_1k_tokens  # raises for a model not in the catalog
        self._settings = settings
        self._providers = providers
        self._db = db
        self._experiences = experiences
        self._metrics = metrics
        self._rng = random.Random(settings.random_seed)
        self._budget = Budget(settings.judge_max_usd_per_hour)
        self._slots = asyncio.Semaphore(settings.judge_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, task: JudgeTask) -> bool:
        """Schedule a verdict if the request is sampled, the backlog has room and the budget allows;
        returns at once either way (True when scheduled)."""
        if self._rng.random() >= self._settings.judge_sample_rate:
            return False
        if len(self._tasks) >= self._settings.judge_backlog:
            self._metrics.judge_calls.labels("skipped_backlog").inc()
            return False
        system = rubric(task.task_type)
        estimate = (
            (estimate_tokens(system + task.prompt + task.answer) + JUDGE_MAX_TOKENS) / 1000 * self._price
        )
        if not self._budget.reserve(estimate, time.monotonic()):
            self._metrics.judge_calls.labels("skipped_budget").inc()
            return False
        job = asyncio.create_task(self._judge(task, system, estimate), name=f"judge-{task.experience_id}")
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)
        return True

    async def _judge(self, task: JudgeTask, system: str, estimate: float) -> None:
        async with self._slots:
            request = CompletionRequest(
                model=self.model,
                system=system,
                prompt=judge_prompt(task.prompt, task.answer),
                temperature=0.0,
                max_tokens=JUDGE_MAX_TOKENS,
                timeout_seconds=self._settings.request_timeout_seconds,
                task_type=JUDGE_TASK,
            )
            try:
                completion = await self._providers.complete(request)
            except ProviderError as exc:
                self._budget.settle(estimate, 0.0, time.monotonic())
                self._metrics.judge_calls.labels("error").inc()
                log.warning("judge call for %s failed: %s", task.experience_id, exc)
                return
            cost = (completion.prompt_tokens + completion.completion_tokens) / 1000 * self._price
            self._budget.settle(estimate, cost, time.monotonic())
            self._metrics.cost.labels(self.model).inc(cost)
            self._metrics.judge_cost.inc(cost)
            verdict = parse_score(completion.text)
            if verdict is None:
                self._metrics.judge_calls.labels("unparsed").inc()
                log.warning(
                    "judge reply for %s is not 'SCORE: N': %.80r", task.experience_id, completion.text
                )
                return
            self._metrics.judge_calls.labels("ok").inc()
            await self._write(task, verdict)

    async def _write(self, task: JudgeTask, verdict: float) -> None:
        # The row may still be queued in the batch writer: wait for it, or the update finds nothing.
        await self._experiences.settled(task.user_id)
        reward = verdict - task.cost_penalty - task.latency_penalty

        async def _update(session: AsyncSession) -> bool:
            return await store.set_judged_quality(session, task.experience_id, verdict, reward)

        try:
            await self._db.write(_update, owner=task.user_id)
        except DatabaseUnavailable as exc:
            log.warning("judge verdict for %s not written: %s", task.experience_id, exc)

    async def drain(self) -> None:
        """Wait for the verdicts in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the verdicts still pending: a lost verdict only leaves its experience unlabelled."""
        for job in list(self._tasks):
            job.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

"""Variations as asyncio tasks in the service process."""

from __future__ import annotations

import asyncio
import time

from quantum_router.executors.base import Job, VariationOutcome
from quantum_router.providers.base import ProviderError, ProviderTimeout
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.variations import VariationPlan


class Fallbacks:
    """Models not yet tried, best first, shared by the variations of one request."""

    def __init__(self, models: tuple[str, ...], used: set[str]) -> None:
        self._queue = [m for m in models if m not in used]

    def next(self) -> str | None:
        """The best untried model, or None when all were tried."""
        return self._queue.pop(0) if self._queue else None


async def run_variation(
    providers: ProviderRegistry, job: Job, plan: VariationPlan, fallbacks: Fallbacks, deadline: float
) -> VariationOutcome:
    """Run one variation; when its model fails, move to the next untried model until the deadline."""
    loop = asyncio.get_running_loop()
    outcome = VariationOutcome(plan=plan, model=plan.model)
    started = time.perf_counter()
    model: str | None = plan.model
    while model is not None:
        outcome.model = model
        outcome.tried.append(model)
        remaining = deadline - loop.time()
        if remaining <= 0:
            outcome.timed_out = True
            break
        try:
            outcome.completion = await providers.complete(job.completion_request(model, plan, remaining))
            outcome.error = None
            outcome.timed_out = False
            break
        except ProviderTimeout as exc:
            outcome.error, outcome.timed_out = str(exc), True
        except ProviderError as exc:
            outcome.error = str(exc)
        model = fallbacks.next()
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    return outcome


class AsyncioExecutor:
    """Runs variations as tasks on the service's event loop."""

    name = "asyncio"

    def __init__(self, providers: ProviderRegistry) -> None:
        self._providers = providers

    async def run(self, job: Job, plans: list[VariationPlan]) -> list[VariationOutcome]:
        """Run all plans concurrently; cancel those still running at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout_seconds
        fallbacks = Fallbacks(job.fallbacks, {p.model for p in plans})
        tasks = [
            asyncio.create_task(run_variation(self._providers, job, plan, fallbacks, deadline))
            for plan in plans
        ]
        done, pending = await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        outcomes = []
        for plan, task in zip(plans, tasks, strict=True):
            if task in done and not task.cancelled():
                outcomes.append(task.result())
            else:
                outcomes.append(VariationOutcome.cancelled(plan, job.timeout_seconds * 1000))
        return outcomes

    async def close(self) -> None:
        """Providers are closed by their owner."""

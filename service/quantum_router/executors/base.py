"""The executor interface and the outcome of one variation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from quantum_router.providers.base import Completion
from quantum_router.variations import VariationPlan


@dataclass(frozen=True)
class Job:
    """What every variation of one request shares."""

    prompt: str
    persona: str
    task_type: str
    max_tokens: int
    timeout_seconds: float
    fallbacks: tuple[str, ...] = ()


@dataclass
class VariationOutcome:
    """The result of one variation, after any fallbacks."""

    plan: VariationPlan
    model: str
    completion: Completion | None = None
    error: str | None = None
    timed_out: bool = False
    latency_ms: float = 0.0
    tried: list[str] = field(default_factory=list)

    @classmethod
    def cancelled(cls, plan: VariationPlan, elapsed_ms: float) -> VariationOutcome:
        """A variation still running when the request's deadline passed."""
        return cls(
            plan, plan.model, error="cancelled at the request timeout", timed_out=True, latency_ms=elapsed_ms,
            tried=[plan.model],
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        """True when the variation produced an answer."""
        return self.completion is not None


class Executor(Protocol):
    """Runs a request's variations concurrently and returns one outcome per plan, in plan order."""

    name: str

    async def run(self, job: Job, plans: list[VariationPlan]) -> list[VariationOutcome]:
        """Run every plan; variations still running at the job's timeout are cancelled, marked timed out."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...

"""The executor interface and the outcome of one variation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from quantum_router.providers.base import Completion, CompletionRequest
from quantum_router.variations import VariationPlan, system_prompt


@dataclass(frozen=True)
class Job:
    """What every variation of one request shares."""

    prompt: str
    persona: str
    task_type: str
    max_tokens: int
    timeout_seconds: float
    fallbacks: tuple[str, ...] = ()
    # Chat requests: the caller's conversation and sampling parameters, sent to the upstream as they are,
    # and the caller's temperature, which replaces every variation's planned one.
    messages: tuple[Mapping[str, Any], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    temperature: float | None = None

    def completion_request(
        self, model: str, plan: VariationPlan, timeout_seconds: float
    ) -> CompletionRequest:
        """The upstream call for one variation of this job on ``model``."""
        return CompletionRequest(
            model=model,
            system=system_prompt(self.persona, self.task_type, plan.style),
            prompt=self.prompt,
            temperature=plan.temperature if self.temperature is None else self.temperature,
            max_tokens=self.max_tokens,
            timeout_seconds=timeout_seconds,
            task_type=self.task_type,
            messages=self.messages,
            params=self.params,
        )


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

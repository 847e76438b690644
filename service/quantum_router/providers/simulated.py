"""A simulated model fleet: declared latency, cost, failure rate and quality per task type.

Each simulated model answers either the prompt's "correct" answer (with its declared probability for the
task type) or a wrong one. Which one is fixed per (prompt, model, temperature), so scoring by agreement
between variations works as it would on real models, and the text always says it is simulated.
"""

from __future__ import annotations

import asyncio
import math
import random
import zlib

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import Completion, CompletionRequest, ProviderError, ProviderTimeout

_ANSWERS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def _seed(*parts: str) -> int:
    return zlib.crc32("\x1f".join(parts).encode())


def expected_answer(prompt: str) -> str:
    """The answer a correct simulated model gives to ``prompt``."""
    return _ANSWERS[_seed(prompt) % len(_ANSWERS)]


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters per token), used where no tokenizer is available."""
    return max(1, math.ceil(len(text) / 4))


class SimulatedProvider:
    """Serves the simulated models of the catalog."""

    def __init__(self, models: dict[str, ModelSpec], time_scale: float = 1.0) -> None:
        self._models = models
        self._time_scale = time_scale
        self._rng = random.Random()

    async def complete(self, request: CompletionRequest) -> Completion:
        """Sleep for a sampled latency (a timeout past ``timeout_seconds``), maybe fail, then answer."""
        spec = self._models[request.model]
        sim = spec.simulation
        assert sim is not None  # the catalog validates this
        latency = self._rng.lognormvariate(math.log(sim.latency_ms.median), sim.latency_ms.sigma) / 1000
        latency *= self._time_scale
        # A real timeout, as an upstream call has: cut off at the deadline and reported as a timeout.
        try:
            async with asyncio.timeout(request.timeout_seconds):
                await asyncio.sleep(latency)
        except TimeoutError:
            raise ProviderTimeout(f"{spec.name} timed out after {request.timeout_seconds:.3f} s") from None
        if self._rng.random() < sim.failure_rate:
            raise ProviderError(f"{spec.name} returned a simulated 503", retryable=True, status=503)
        outcome = random.Random(_seed(request.prompt, spec.name, f"{request.temperature:.2f}")).random()
        correct = outcome < sim.quality_for(request.task_type)
        answer = expected_answer(request.prompt)
        if not correct:
            wrong = [a for a in _ANSWERS if a != answer]
            answer = wrong[_seed(request.prompt, spec.name, "wrong") % len(wrong)]
        text = f"[simulated] answer: {answer}"
        return Completion(
            text=text,
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.prompt),
            completion_tokens=min(request.max_tokens, sim.output_tokens),
            finish_reason="stop",
        )

    async def close(self) -> None:
        """Nothing to release."""

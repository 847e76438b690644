"""A simulated model fleet: declared latency, cost, failure rate and quality per task type.

Each simulated model answers either the prompt's "correct" answer (with its declared probability for the
task type) or a wrong one. Which one is fixed per (prompt, model, temperature), so scoring by agreement
between variations works as it would on real models, and the text always says it is simulated.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import zlib
from collections.abc import AsyncIterator

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import (
    Completion,
    CompletionRequest,
    Delta,
    ProviderError,
    ProviderTimeout,
    StreamEvent,
    estimate_tokens,
    verdict,
)

_ANSWERS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def _seed(*parts: str) -> int:
    return zlib.crc32("\x1f".join(parts).encode())


def expected_answer(prompt: str) -> str:
    """The answer a correct simulated model gives to ``prompt``."""
    return _ANSWERS[_seed(prompt) % len(_ANSWERS)]


def _between(text: str, start: str, end: str) -> str:
    """The text between the first ``start`` and the last ``end`` ("" when either is missing)."""
    i, j = text.find(start), text.rfind(end)
    return text[i + len(start) : j] if i >= 0 and j > i else ""


class SimulatedProvider:
    """Serves the simulated models of the catalog."""

    def __init__(
        self, models: dict[str, ModelSpec], time_scale: float = 1.0, judge_noise: float = 0.1
    ) -> None:
        self._models = models
        self._time_scale = time_scale
        self._judge_noise = judge_noise
        self._rng = random.Random()

    async def complete(self, request: CompletionRequest) -> Completion:
        """Sleep for a sampled latency (a timeout past ``timeout_seconds``), maybe fail, then answer."""
        spec, latency = self._start(request)
        await self._wait(spec, latency, request.timeout_seconds)
        return self._answer(spec, request)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The same answer as ``complete``, word by word: the first word after half the sampled latency,
        the others spread over the second half."""
        spec, latency = self._start(request)
        await self._wait(spec, latency / 2, request.timeout_seconds)
        completion = self._answer(spec, request)
        words = re.findall(r"\S+\s*", completion.text)
        for i, word in enumerate(words):
            if i:
                await asyncio.sleep(latency / 2 / len(words))
            yield Delta(word)
        yield completion

    def _start(self, request: CompletionRequest) -> tuple[ModelSpec, float]:
        spec = self._models[request.model]
        sim = spec.simulation
        assert sim is not None  # the catalog validates this
        latency = self._rng.lognormvariate(math.log(sim.latency_ms.median), sim.latency_ms.sigma) / 1000
        return spec, latency * self._time_scale

    async def _wait(self, spec: ModelSpec, seconds: float, timeout_seconds: float) -> None:
        # A real timeout, as an upstream call has: cut off at the deadline and reported as a timeout.
        try:
            async with asyncio.timeout(timeout_seconds):
                await asyncio.sleep(seconds)
        except TimeoutError:
            raise ProviderTimeout(f"{spec.name} timed out after {timeout_seconds:.3f} s") from None
        assert spec.simulation is not None
        if self._rng.random() < spec.simulation.failure_rate:
            raise ProviderError(f"{spec.name} returned a simulated 503", retryable=True, status=503)

    def _answer(self, spec: ModelSpec, request: CompletionRequest) -> Completion:
        sim = spec.simulation
        assert sim is not None
        if request.task_type == "judge":
            return self._verdict(request)
        outcome = random.Random(_seed(request.prompt, spec.name, f"{request.temperature:.2f}")).random()
        correct = outcome < sim.quality_for(request.task_type)
        answer = expected_answer(request.prompt)
        if not correct:
            wrong = [a for a in _ANSWERS if a != answer]
            answer = wrong[_seed(request.prompt, spec.name, "wrong") % len(wrong)]
        text = f"[simulated] answer: {answer}"
        if request.task_type == "code_generation":
            # Code answers carry a Python block, as real ones do, so the parse verifier passes them.
            text += f"\n```python\nanswer = {answer!r}\n```"
        return Completion(
            text=text,
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.prompt),
            completion_tokens=min(request.max_tokens, sim.output_tokens),
            finish_reason="stop",
        )

    def _verdict(self, request: CompletionRequest) -> Completion:
        """A simulated judge: it sees the simulated truth (is the answer the prompt's correct one?) and
        reports it as ``SCORE: N`` with Gaussian noise of ``judge_noise`` on the 0-1 scale."""
        prompt = _between(request.prompt, "<prompt>\n", "\n</prompt>")
        answer = _between(request.prompt, "<answer>\n", "\n</answer>")
        correct = re.search(rf"answer: {expected_answer(prompt)}\b", answer) is not None
        value = (1.0 if correct else 0.0) + self._rng.gauss(0.0, self._judge_noise)
        return verdict(value, request)

    async def close(self) -> None:
        """Nothing to release."""

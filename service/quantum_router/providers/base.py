"""The provider interface and its value types."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters per token), used where no tokenizer is available."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True)
class CompletionRequest:
    """One chat completion to run on one model."""

    model: str
    system: str
    prompt: str
    temperature: float
    max_tokens: int
    timeout_seconds: float
    task_type: str = "default"
    # A chat request's own conversation (OpenAI message objects), sent instead of ``system`` + ``prompt``.
    messages: tuple[Mapping[str, Any], ...] = ()
    # Caller's sampling parameters passed to the upstream unchanged (``stop``, ``top_p``, ``seed``, ...).
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """What a provider returned."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer, as the upstream produced it."""

    text: str


# A stream yields deltas and ends with the whole completion (text, usage, finish reason).
StreamEvent = Delta | Completion


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether another attempt may succeed."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    """The provider did not answer within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class Provider(Protocol):
    """Runs chat completions for the models it serves."""

    async def complete(self, request: CompletionRequest) -> Completion:
        """Run one completion or raise :class:`ProviderError`."""
        ...

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Run one completion as a stream: deltas as they arrive, then the :class:`Completion`.

        Raises :class:`ProviderError` like ``complete``; retries happen only before the first delta.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def verdict(value: float, request: CompletionRequest) -> Completion:
    """A judge's reply for a quality ``value`` in [0, 1]: ``SCORE: N`` on the rubric's 0-10 scale."""
    return Completion(
        text=f"SCORE: {min(10, max(0, round(value * 10)))}",
        prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.prompt),
        completion_tokens=3,
        finish_reason="stop",
    )

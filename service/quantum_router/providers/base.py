"""The provider interface and its value types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True)
class Completion:
    """What a provider returned."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


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

    async def close(self) -> None:
        """Release connections."""
        ...

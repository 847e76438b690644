"""Replayed models: answers from a dataset's recorded per-model outcomes, for evaluation on real data.

A replay model is a column of a full-information dataset (a CSV or folder of CSVs with a ``prompt`` column
and one outcome column per model, as ``quantum-router train`` reads them; the RouteLLM MMLU rows record
whether each model answered each question correctly). Its answer to a prompt of the dataset says what was
recorded: ``[replay] MODEL: recorded outcome 1 (correct)``. It cannot answer a prompt the dataset does not
hold, and says so with a non-retryable :class:`ProviderError`.

As a judge (a request with the judge task type), the provider reads the prompt and the answer out of the
judge's message and reports the recorded outcome of the model that gave the answer as ``SCORE: N`` (the
outcome times 10, clipped to 0-10): the verdict on a replayed answer is what the dataset recorded, so a
closed loop on this provider learns from real outcomes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import (
    Completion,
    CompletionRequest,
    Delta,
    ProviderError,
    StreamEvent,
    estimate_tokens,
    verdict,
)

# The task type of judge calls (quantum_router.judge.JUDGE_TASK; not imported: judge imports providers).
_JUDGE_TASK = "judge"
_ANSWER = re.compile(r"\[replay\] (?P<model>[^\n]+?): recorded outcome ")


@dataclass(frozen=True)
class _Table:
    """One dataset: row of each prompt, the outcome columns' names and the outcomes."""

    rows: dict[str, int]
    models: list[str]
    outcomes: list[list[float]]


def _load(path: Path) -> _Table:
    # The loader `train` uses, so a dataset that trains a policy also replays; numpy only, no torch.
    from quantum_router.learning.datasets import load_dataset

    data = load_dataset(path)
    rows: dict[str, int] = {}
    for i, prompt in enumerate(data.prompts):
        # The first row of a repeated prompt wins, so an answer never depends on load order elsewhere.
        rows.setdefault(prompt.strip(), i)
    return _Table(rows=rows, models=list(data.models), outcomes=data.outcomes.tolist())


def _between(text: str, start: str, end: str) -> str | None:
    """The text between the first ``start`` and the last ``end``, None when either is missing."""
    i, j = text.find(start), text.rfind(end)
    return text[i + len(start) : j] if i >= 0 and j > i else None


def _describe(value: float) -> str:
    if value == 1.0:
        return "correct"
    if value == 0.0:
        return "wrong"
    return "recorded quality"


class ReplayProvider:
    """Serves the catalog's replay models from their datasets (each dataset loaded once, at start)."""

    def __init__(self, models: dict[str, ModelSpec]) -> None:
        tables: dict[Path, _Table] = {}
        self._columns: dict[str, tuple[_Table, int]] = {}
        self._specs = models
        for name, spec in models.items():
            replay = spec.replay
            if replay is None:
                raise ValueError(f"replay model {name} needs a 'replay' section")
            path = replay.dataset.resolve()
            if path not in tables:
                tables[path] = _load(path)
            table = tables[path]
            column = replay.column or name
            if column not in table.models:
                raise ValueError(f"replay model {name}: no column {column!r} in {path} ({table.models})")
            self._columns[name] = (table, table.models.index(column))

    def outcome(self, model: str, prompt: str) -> float:
        """The recorded outcome of ``model`` on ``prompt``; ProviderError when the dataset lacks it."""
        table, column = self._columns[model]
        row = table.rows.get(prompt.strip())
        if row is None:
            spec = self._specs[model].replay
            dataset = spec.dataset if spec else "?"
            raise ProviderError(
                f"{model} replays recorded outcomes and has none for this prompt (not in {dataset})",
                retryable=False,
                status=404,
            )
        return table.outcomes[row][column]

    async def complete(self, request: CompletionRequest) -> Completion:
        """The recorded outcome of the request's model as its answer, or the replay judge's verdict."""
        if request.task_type == _JUDGE_TASK:
            return self._verdict(request)
        value = self.outcome(request.model, request.prompt)
        spec = self._specs[request.model].replay
        assert spec is not None  # checked at construction
        return Completion(
            text=f"[replay] {request.model}: recorded outcome {value:g} ({_describe(value)})",
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.prompt),
            completion_tokens=min(request.max_tokens, spec.output_tokens),
            finish_reason="stop",
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The same answer as ``complete`` in one delta (nothing is generated, so nothing to spread)."""
        completion = await self.complete(request)
        yield Delta(completion.text)
        yield completion

    def _verdict(self, request: CompletionRequest) -> Completion:
        # The judge's message is quantum_router.judge.judge_prompt(prompt, answer).
        prompt = _between(request.prompt, "<prompt>\n", "\n</prompt>")
        answer = _between(request.prompt, "<answer>\n", "\n</answer>")
        match = _ANSWER.search(answer or "")
        if prompt is None or match is None or match.group("model") not in self._columns:
            raise ProviderError(
                f"{request.model} judges only answers of replay models it serves", retryable=False
            )
        value = self.outcome(match.group("model"), prompt)
        return verdict(value, request)

    async def close(self) -> None:
        """Nothing to release."""

"""The replay provider answers from a dataset's recorded per-model outcomes, and judges by them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from pydantic import ValidationError

from quantum_router.catalog import ModelSpec, ReplaySpec
from quantum_router.judge import judge_prompt, parse_score, rubric
from quantum_router.providers.base import Completion, CompletionRequest, Delta, ProviderError
from quantum_router.providers.replay import ReplayProvider
from quantum_router.settings import Settings

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def replay_model(name: str, dataset: Path, column: str | None = None) -> ModelSpec:
    """A catalog entry of a replayed model."""
    return ModelSpec(
        name=name,
        provider="replay",
        cost_per_1k_tokens=0.001,
        replay=ReplaySpec(dataset=dataset, column=column),
    )


def request(model: str, prompt: str, task_type: str = "chat") -> CompletionRequest:
    """A completion request as the executor builds it."""
    return CompletionRequest(model, "system", prompt, 0.7, 256, 5.0, task_type)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    rows = [
        ["prompt", "weak", "strong", "notes"],
        ["q1", "True", "False", "x"],
        [" q2\n", "False", "True", "y"],
    ]
    rows.append(["q3", "0.25", "1", "z"])
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


async def test_a_replayed_answer_is_the_recorded_outcome(tiny: Path) -> None:
    provider = ReplayProvider({"w": replay_model("w", tiny, "weak"), "strong": replay_model("strong", tiny)})
    answer = await provider.complete(request("w", "q1"))
    assert answer.text == "[replay] w: recorded outcome 1 (correct)"
    assert answer.finish_reason == "stop" and answer.completion_tokens == 1
    assert (
        await provider.complete(request("strong", "q1"))
    ).text == "[replay] strong: recorded outcome 0 (wrong)"
    # Surrounding white space does not matter (the CSV's " q2\n" is the prompt "q2").
    assert (await provider.complete(request("strong", "q2"))).text.endswith("outcome 1 (correct)")
    assert (await provider.complete(request("w", "q3"))).text.endswith("outcome 0.25 (recorded quality)")
    events = [event async for event in provider.stream(request("w", "q1"))]
    assert (
        events[0] == Delta(answer.text)
        and isinstance(events[1], Completion)
        and events[1].text == answer.text
    )


async def test_an_unknown_prompt_is_a_provider_error_not_a_crash(tiny: Path) -> None:
    provider = ReplayProvider({"w": replay_model("w", tiny, "weak")})
    with pytest.raises(ProviderError, match="has none for this prompt") as raised:
        await provider.complete(request("w", "a question nobody recorded"))
    assert raised.value.retryable is False


async def test_the_replay_judge_reports_the_recorded_outcome(tiny: Path) -> None:
    models = {"w": replay_model("w", tiny, "weak"), "strong": replay_model("strong", tiny)}
    provider = ReplayProvider(models)

    async def verdict(judge: str, prompt: str, answer: str) -> float | None:
        call = request(judge, judge_prompt(prompt, answer), task_type="judge")
        return parse_score((await provider.complete(call)).text)

    for model, prompt in (("w", "q1"), ("strong", "q1"), ("strong", "q2"), ("w", "q3")):
        answer = (await provider.complete(request(model, prompt))).text
        # Any replay model may judge; the verdict is the answering model's recorded outcome, rounded to 0.1.
        recorded = provider.outcome(model, prompt)
        assert await verdict("strong", prompt, answer) == round(recorded, 1)
        assert await verdict("w", prompt, answer) == round(recorded, 1)
    with pytest.raises(ProviderError, match="judges only answers of replay models"):
        await verdict("strong", "q1", "an answer from some other provider")


async def test_the_mmlu_columns_replay_the_shipped_rows() -> None:
    anatomy = Settings().data_dir / "mmlu_anatomy.csv"
    with anatomy.open(newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    provider = ReplayProvider({name: replay_model(name, anatomy) for name in (WEAK, STRONG)})
    for name in (WEAK, STRONG):
        recorded = 1.0 if first[name] == "True" else 0.0
        assert provider.outcome(name, first["prompt"]) == recorded
        assert (await provider.complete(request(name, first["prompt"]))).text.startswith(f"[replay] {name}: ")


def test_a_missing_column_or_section_is_refused_at_start(tiny: Path) -> None:
    with pytest.raises(ValueError, match="no column 'gpt-5'"):
        ReplayProvider({"x": replay_model("x", tiny, "gpt-5")})
    with pytest.raises(ValueError, match="no column 'notes'"):  # free text is not an outcome column
        ReplayProvider({"x": replay_model("x", tiny, "notes")})
    with pytest.raises(ValidationError, match="needs a 'replay' section"):
        ModelSpec(name="x", provider="replay", cost_per_1k_tokens=0.0)
    assert rubric("chat")  # the judge's rubric is what the replay judge is sent; its text does not matter

"""Variation plans: which models, temperatures and system prompts to run for one request."""

from __future__ import annotations

from dataclasses import dataclass

# Styles vary the system prompt so parallel runs on the same model do not all say the same thing.
STYLES = ("direct", "step_by_step", "concise", "critical", "examples")
_STYLE_TEXT = {
    "direct": "Answer directly and accurately.",
    "step_by_step": "Reason step by step, then give the final answer.",
    "concise": "Answer as briefly as correctness allows.",
    "critical": "Check your answer for mistakes before giving it.",
    "examples": "Illustrate the answer with a short example.",
}
TEMPERATURES = (0.2, 0.7, 0.4, 0.9, 0.0)


@dataclass(frozen=True)
class VariationPlan:
    """One parallel attempt at a request."""

    model: str
    temperature: float
    style: str


def system_prompt(persona: str, task_type: str, style: str) -> str:
    """The system prompt sent with a variation."""
    return f"You are assisting a {persona} with a {task_type.replace('_', ' ')} task. {_STYLE_TEXT[style]}"


def plan_variations(ranking: list[str], count: int) -> list[VariationPlan]:
    """``count`` variations over the best models; when there are fewer models than variations, the best
    models run again with other temperatures and styles."""
    plans = []
    for i in range(count):
        model = ranking[i % len(ranking)]
        round_ = i // len(ranking)
        plans.append(
            VariationPlan(model, TEMPERATURES[(i + round_) % len(TEMPERATURES)], STYLES[i % len(STYLES)])
        )
    return plans

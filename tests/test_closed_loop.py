"""The closed loop of issue #15: a catalog that names the wrong model best at code generation is corrected by
judge-labelled traffic, ``train --from-log --publish`` and the running service loading each new policy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.closed_loop import BETTER, LoopConfig, run_loop, start_ray, stop_ray

pytestmark = pytest.mark.integration


@pytest.fixture
def ray_session() -> Iterator[None]:
    """One local Ray for the run's trainings, in its own temp dir."""
    temp_dir = start_ray()
    yield
    stop_ray(temp_dir)


def test_the_loop_moves_code_generation_to_the_model_the_catalog_underrates(
    ray_session: None, tmp_path: Path
) -> None:
    # Short on purpose: exploration (30 %) and judge sampling (50 %) are far above production values, so two
    # trainings on 120 requests each have enough labelled outcomes of both models. bench/closed_loop.py runs
    # the realistic rates (docs/routing.md, The closed loop).
    config = LoopConfig(rounds=3, requests_per_round=120, judge_sample_rate=0.5, epsilon=0.3, steps=2000)
    result = run_loop(config, tmp_path)

    first, last = result.rounds[0], result.rounds[-1]
    assert first.policy_version == "prior-1"
    # The prior believes the catalog: model-b gets only what exploration gives it (30 % / 2 models).
    assert first.better_share_code < 0.3, first
    assert first.exit_status == 0, first  # the first training beat the prior at the gate and was published
    assert last.policy_version != "prior-1"
    assert last.better_share_code > first.better_share_code + 0.4, result.rounds
    assert last.regret < first.regret / 2, result.rounds
    # Chat, where the catalog is right, stays with model-a: exploration alone sends it 0.15 of chat. A reward
    # model that reads model-b's chat quality off its good code answers sent 0.77-0.83 (docs/routing.md).
    assert last.better_share_chat < 0.35, result.rounds
    # The labels were the judge's verdicts, on both models' answers to code generation.
    assert first.sources.keys() == {"judge"}
    assert first.judged.get(f"{BETTER}/code_generation", 0) >= 1

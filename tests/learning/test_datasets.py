"""Dataset loading, splits, costs and the experience-log problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantum_router.features import FeatureSpec, normalise_prompt
from quantum_router.learning.datasets import (
    feature_spec_for_dataset,
    load_dataset,
    model_costs_per_1k,
    parse_cost_overrides,
    split_dataset,
    to_problem,
    training_problems,
)
from quantum_router.learning.experience import LoggedExperience, problem_from_log
from quantum_router.learning.text_fit import TextFitConfig


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_outcome_columns_and_ignored_text(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "algebra.csv",
        'prompt,a,b,response_a,score\n"What is 1+1?\nA. 2",True,False,"it is 2",0.5\nq2,false,TRUE,xyz,1\n',
    )
    data = load_dataset(f)
    assert data.models == ["a", "b", "score"]  # response_a holds free text: ignored
    np.testing.assert_array_equal(data.outcomes, [[1, 0, 0.5], [0, 1, 1]])
    assert data.task_types == ["algebra", "algebra"]
    assert data.prompts[0].startswith("What is 1+1?\nA.")


def test_folder_uses_file_stems_as_task_types(tmp_path: Path) -> None:
    _write(tmp_path / "mmlu_x.csv", "prompt,a,b\np1,True,True\np2,False,True\n")
    _write(tmp_path / "mmlu_y.csv", "prompt,a,b\np3,True,False\n")
    data = load_dataset(tmp_path)
    assert data.task_types == ["mmlu_x", "mmlu_x", "mmlu_y"]
    spec = feature_spec_for_dataset(data)
    assert spec.task_types == ("mmlu_x", "mmlu_y")
    problem = to_problem(data, spec, [0.1, 1.0])
    assert problem.features.shape == (3, spec.dim)
    offset = spec.ngram_buckets + len(spec.personas)
    assert problem.features[2, offset + 1] == 1.0  # the subject one-hot


def test_splits_are_disjoint_and_seeded(mmlu_slice: Path) -> None:
    data = load_dataset(mmlu_slice)
    train, test = split_dataset(data, "random", seed=3, test_fraction=0.25)
    assert not set(train.prompts) & set(test.prompts)
    assert len(train) + len(test) == len(data)
    again, _ = split_dataset(data, "random", seed=3, test_fraction=0.25)
    assert again.prompts == train.prompts
    train, test = split_dataset(data, "subject", seed=3)
    assert not set(train.task_types) & set(test.task_types)
    assert len(set(test.task_types)) == 3


def test_training_problems_with_and_without_a_text_model(mmlu_slice: Path) -> None:
    data = load_dataset(mmlu_slice)
    train, test = split_dataset(data, "random", seed=0)
    plain, plain_test = training_problems(data, train, test, [0.0006, 0.02], None)
    assert plain.text_model is None and not plain.text_cross_fitted
    assert set(plain.feature_spec.task_types) == set(data.task_types) == set(plain_test.task_types)
    scored, scored_test = training_problems(data, train, test, [0.0006, 0.02], TextFitConfig(buckets=4096))
    model = scored.text_model
    assert model is not None and scored_test.text_model is model
    assert scored.feature_spec == scored_test.feature_spec and scored.feature_spec.text_scores == 2
    assert scored.text_cross_fitted and not scored_test.text_cross_fitted
    # Test rows are scored by the model the policy will carry; training rows by models that did not see them.
    np.testing.assert_allclose(
        scored_test.features[0, -2:], model.scores(normalise_prompt(test.prompts[0]), test.task_types[0])
    )
    own = model.scores(normalise_prompt(train.prompts[0]), train.task_types[0])
    assert not np.allclose(scored.features[0, -2:], own)


def test_costs_from_overrides_catalog_and_known_prices() -> None:
    overrides = parse_cost_overrides(["gpt-4-1106-preview=30", "x=1.5"])
    assert overrides == {"gpt-4-1106-preview": 30.0, "x": 1.5}
    costs = model_costs_per_1k(
        ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview", "sim-nano"], overrides
    )
    assert costs == pytest.approx([0.0006, 0.03, 0.0002])
    with pytest.raises(ValueError, match="--cost"):
        model_costs_per_1k(["unknown-model"], {})


def test_experience_log_fills_untaken_actions_with_the_reward_model() -> None:
    spec = FeatureSpec(personas=(), task_types=("t",), ngram_buckets=4)
    rng = np.random.default_rng(0)
    rows: list[LoggedExperience | dict[str, object]] = []
    for i in range(400):
        x = np.zeros(spec.dim, np.float32)
        x[0] = rng.choice([-1.0, 1.0])
        x[-1] = 1.0
        action = "good-when-positive" if i % 2 else "flat"
        quality = (0.9 if x[0] > 0 else 0.1) if action == "good-when-positive" else 0.5
        if i % 10 == 0:
            rows.append(
                {
                    "features": x.tolist(),
                    "action": action,
                    "propensity": 0.5,
                    "quality": 0.0,
                    "rating": quality,
                    "cost_usd": 0.01,
                }
            )
        else:
            rows.append(LoggedExperience(features=x, action=action, propensity=0.5, quality=quality))
    problem = problem_from_log(rows, spec, ["flat", "good-when-positive"], [0.001, 0.01])
    assert problem.quality.shape == (400, 2)
    positive = problem.features[:, 0] > 0
    # Predicted where not taken, observed where taken: both columns are right on every row.
    assert np.allclose(problem.quality[positive, 1], 0.9, atol=0.05)
    assert np.allclose(problem.quality[~positive, 1], 0.1, atol=0.05)
    assert np.allclose(problem.quality[:, 0], 0.5, atol=0.05)

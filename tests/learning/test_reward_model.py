"""The smoothed reward: a ridge fit on the training problem, blended with the observed outcome."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quantum_router.learning.env import RoutingBanditEnv, env_config_for
from quantum_router.learning.reward_model import smoothed_problem, smoothed_quality
from quantum_router.learning.train import TrainConfig, resolved_reward, reward_problem

from .conftest import synthetic_problem


def test_ridge_reward_is_smooth_and_outcome_weight_blends() -> None:
    problem, _ = synthetic_problem(400, seed=0)
    rng = np.random.default_rng(0)
    # Binary outcomes drawn around a per-task mean: the fit recovers the means, not the coin flips.
    task = problem.features[:, 8:12].argmax(axis=1)
    means = np.array([[0.2, 0.8, 0.5], [0.7, 0.3, 0.5], [0.5, 0.5, 0.9], [0.1, 0.4, 0.6]])
    problem.quality = (rng.random((400, 3)) < means[task]).astype(np.float32)
    fitted = smoothed_quality(problem, alpha=1.0)
    assert fitted.min() >= 0.0 and fitted.max() <= 1.0
    assert np.abs(fitted - means[task]).mean() < np.abs(problem.quality - means[task]).mean() / 2
    np.testing.assert_allclose(smoothed_quality(problem, 1.0, outcome_weight=1.0), problem.quality)
    half = smoothed_quality(problem, 1.0, outcome_weight=0.5)
    np.testing.assert_allclose(half, 0.5 * problem.quality + 0.5 * fitted, atol=1e-6)
    smooth = smoothed_problem(problem, 1.0)
    assert smooth.info["reward_model"] == {"ridge": 1.0, "outcome_weight": 0.0}
    np.testing.assert_array_equal(smooth.features, problem.features)
    with pytest.raises(ValueError):
        smoothed_quality(problem, 1.0, outcome_weight=1.5)


def test_train_config_chooses_what_the_env_pays() -> None:
    problem, _ = synthetic_problem(50, seed=1)
    assert reward_problem(problem, TrainConfig(reward="outcome")) is problem
    smooth = reward_problem(problem, TrainConfig(reward="ridge", reward_ridge=3.0))
    env = RoutingBanditEnv(env_config_for(smooth, cost_weight=0.0))
    _, info = env.reset(seed=0)
    _, reward, *_ = env.step(np.int64(1))
    assert reward == pytest.approx(float(smoothed_quality(problem, 3.0)[info["row"], 1]))
    with pytest.raises(ValueError):
        reward_problem(problem, TrainConfig(reward="nope"))


def test_auto_reward_pays_cross_fitted_text_scores_and_falls_back_to_ridge() -> None:
    problem, _ = synthetic_problem(60, seed=2)
    assert resolved_reward(problem, TrainConfig()) == "ridge"  # no text scores: the ridge reward model
    with pytest.raises(ValueError):
        reward_problem(problem, TrainConfig(reward="text"))
    # The same contexts with three trailing text-score features, cross-fitted on the problem's outcomes.
    scores = np.random.default_rng(0).uniform(size=(60, 3)).astype(np.float32)
    spec = dataclasses.replace(problem.feature_spec, text_scores=3)
    scored = dataclasses.replace(
        problem, feature_spec=spec, features=np.hstack([problem.features, scores]), text_cross_fitted=True
    )
    assert resolved_reward(scored, TrainConfig()) == "text"
    paid = reward_problem(scored, TrainConfig())
    np.testing.assert_allclose(paid.quality, scores)
    np.testing.assert_array_equal(paid.features, scored.features)
    half = reward_problem(scored, TrainConfig(reward_outcome_weight=0.5))
    np.testing.assert_allclose(half.quality, 0.5 * scores + 0.5 * problem.quality, atol=1e-6)


def test_a_log_problem_pays_its_own_reward_model() -> None:
    problem, _ = synthetic_problem(40, seed=3)
    assert resolved_reward(problem, TrainConfig()) == "ridge"
    with pytest.raises(ValueError):
        reward_problem(problem, TrainConfig(reward="fitted"))
    fitted = np.clip(problem.quality + 0.1, 0.0, 1.0).astype(np.float32)
    logged = dataclasses.replace(problem, fitted_quality=fitted, info={"reward_prior": "served policy"})
    assert resolved_reward(logged, TrainConfig()) == "fitted"
    paid = reward_problem(logged, TrainConfig())
    np.testing.assert_allclose(paid.quality, fitted)
    assert paid.info["reward_model"] == {"fitted": "served policy", "outcome_weight": 0.0}
    half = reward_problem(logged, TrainConfig(reward_outcome_weight=0.5))
    np.testing.assert_allclose(half.quality, 0.5 * fitted + 0.5 * problem.quality, atol=1e-6)

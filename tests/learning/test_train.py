"""RLlib DQN on a small synthetic bandit with a known best model per context learns the rule."""

from __future__ import annotations

import dataclasses

import numpy as np

from quantum_router.learning.experience import LoggedExperience
from quantum_router.learning.train import TrainConfig, train_from_log, train_policy
from quantum_router.policy import policy_from_bytes
from quantum_router.text_model import TextHashing, TextModel

from .conftest import synthetic_problem


def test_dqn_beats_random_on_held_out_contexts() -> None:
    train, _ = synthetic_problem(2000, seed=0)
    test, best = synthetic_problem(1000, seed=1)  # fresh contexts, never seen in training
    # The raw outcomes: the rule is non-linear (task type x sign of a feature), which a ridge reward
    # model cannot represent.
    config = TrainConfig(
        steps=4000, hidden=[32], lr=3e-3, batch_size=128, training_intensity=16.0, seed=0, reward="outcome"
    )
    result = train_policy(train, config, info={"dataset": "synthetic"})
    policy = policy_from_bytes(result.policy.to_bytes())
    q = policy.q_values(test.features)
    rows = np.arange(len(test))
    learned = float(test.quality[rows, q.argmax(axis=1)].mean())
    random_quality = float(test.quality.mean())  # uniform random choice: 0.9/3 + 0.2*2/3 ~ 0.433
    accuracy = float((q.argmax(axis=1) == best).mean())
    assert learned > random_quality + 0.25, (learned, random_quality, accuracy)
    assert accuracy > 0.8
    assert result.env_steps >= 4000 and result.learner_updates > 200
    assert policy.info["dataset"] == "synthetic" and policy.info["env_steps"] == result.env_steps
    assert policy.version.startswith("dqn-")


def test_train_from_experience_log_learns_the_logged_best_model() -> None:
    problem, _ = synthetic_problem(1500, seed=3)
    # The serving policy had a text model (an uninformative one: every score is 0.5), so every logged
    # feature vector ends with its scores, and the policy trained on the log must carry it on.
    text = TextModel(
        TextHashing(buckets=64),
        np.ones(64, np.float32),
        np.zeros((64, 3), np.float32),
        np.zeros(3, np.float32),
    )
    spec = dataclasses.replace(problem.feature_spec, text_scores=3)
    problem = dataclasses.replace(
        problem,
        feature_spec=spec,
        features=np.hstack([problem.features, np.full((1500, 3), 0.5, np.float32)]),
    )
    task = problem.features[:, 8:12].argmax(axis=1)
    best = task % 3  # linear in the task one-hot, so the per-model ridge reward model can represent it
    rng = np.random.default_rng(0)
    log = []
    for i in range(len(problem)):
        action = int(rng.integers(3))  # uniform logging policy
        quality = 0.9 if action == best[i] else 0.2
        log.append(
            LoggedExperience(
                features=problem.features[i], action=problem.models[action], propensity=1 / 3, quality=quality
            )
        )
    config = TrainConfig(steps=2000, hidden=[16], lr=3e-3, batch_size=128, training_intensity=16.0, seed=0)
    result = train_from_log(
        log, problem.feature_spec, problem.models, [0.001, 0.002, 0.003], config, text_model=text
    )
    assert result.policy.info["source"] == "experience log" and result.policy.info["experiences"] == len(log)
    # No prompts in the log, so no cross-fitted text scores: the reward is the log's own IPS ridge fill-in.
    assert result.policy.info["reward"] == "fitted" and result.policy.text_model is text
    assert result.policy.features("any prompt", "", "a").shape == (spec.dim,)
    chosen = result.policy.q_values(problem.features).argmax(axis=1)
    assert (chosen == best).mean() > 0.9

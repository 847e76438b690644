"""The log's reward model with the served policy as its prior: it shrinks toward the policy's belief."""

from __future__ import annotations

import numpy as np
import pytest

from quantum_router.catalog import Catalog
from quantum_router.default_policy import prior_policy
from quantum_router.features import FeatureSpec, extract
from quantum_router.learning.experience import LoggedExperience, problem_from_log
from quantum_router.learning.prior import believed_quality, prior_fill, task_groups
from quantum_router.log_training import root_policy
from quantum_router.policy import Policy

CODE, CHAT = "code_generation", "chat"
SPEC = FeatureSpec(personas=("developer",), task_types=(CODE, CHAT), ngram_buckets=16)
MODELS = ["model-a", "model-b"]
# The closed loop's wrong catalog (bench/closed_loop.py): right on chat, wrong on code generation.
BELIEF = {CODE: [0.9, 0.75], CHAT: [0.8, 0.7]}
TRUTH = {CODE: [0.6, 0.85], CHAT: [0.8, 0.7]}


def _features(task: str, i: int) -> np.ndarray:
    return extract(f"{task} request {i:08x}", "developer", task, SPEC)


def _row(task: str, i: int, model: str, quality: float, propensity: float) -> LoggedExperience:
    return LoggedExperience(_features(task, i), model, propensity, quality=quality, source="judge")


def _prior(rows: list[LoggedExperience]) -> np.ndarray:
    groups = task_groups(np.asarray([r.features for r in rows]), SPEC)
    return np.asarray([BELIEF[SPEC.task_types[g]] for g in groups])


def test_the_served_policys_belief_is_its_q_plus_the_cost_it_charged() -> None:
    catalog = Catalog.model_validate(
        {
            "personas": ["developer"],
            "task_types": [CODE, CHAT],
            "models": [
                {
                    "name": name,
                    "provider": "simulated",
                    "cost_per_1k_tokens": price,
                    "quality": quality,
                    "simulation": {"latency_ms": {"median": 100, "sigma": 0.1}, "quality": quality},
                }
                for name, price, quality in (
                    ("model-a", 0.002, {"default": 0.8, CODE: 0.9}),
                    ("model-b", 0.01, {"default": 0.7, CODE: 0.75}),
                )
            ],
        }
    )
    policy = prior_policy(catalog)
    x = np.stack(
        [
            extract("write a parser", "developer", CODE, policy.feature_spec),
            extract("hello", "developer", CHAT, policy.feature_spec),
        ]
    )
    np.testing.assert_allclose(believed_quality(policy, x), [[0.9, 0.75], [0.8, 0.7]], atol=1e-6)
    assert not np.allclose(policy.q_values(x), believed_quality(policy, x))  # the cost is added back


def test_without_labels_for_a_model_on_a_task_type_the_prediction_is_the_prior() -> None:
    # model-b has many code labels far above its belief, none on chat: chat stays at the belief, which the
    # fit without a prior does not do (model-b's code answers would stand in for its chat ones).
    rows = [_row(CODE, i, "model-b", 1.0, 0.5) for i in range(50)]
    rows += [_row(CHAT, i, "model-a", 0.8, 0.95) for i in range(50)]
    prior = _prior(rows)
    problem = problem_from_log(rows, SPEC, MODELS, [0.002, 0.002], prior=prior)
    assert problem.fitted_quality is not None
    chat = task_groups(problem.features, SPEC) == 1
    np.testing.assert_allclose(problem.fitted_quality[chat, 1], 0.7, atol=1e-6)
    np.testing.assert_allclose(problem.fitted_quality[~chat, 0], 0.9, atol=1e-6)  # model-a: no code label
    assert problem.info["reward_prior"] == "served policy" and problem.info["ridge"] == 10.0
    average = problem_from_log(rows, SPEC, MODELS, [0.002, 0.002])
    assert average.fitted_quality is not None
    assert float(average.fitted_quality[chat, 1].mean()) > 0.9


def test_with_many_labels_the_prediction_approaches_their_mean() -> None:
    rng = np.random.default_rng(0)
    rows = [
        _row(task, i, model, float(rng.random() < TRUTH[task][j]), 0.5)
        for i in range(2000)
        for task in (CODE, CHAT)
        for j, model in enumerate(MODELS)
        if rng.random() < 0.5
    ]
    problem = problem_from_log(rows, SPEC, MODELS, [0.002, 0.002], prior=_prior(rows))
    assert problem.fitted_quality is not None
    groups = task_groups(problem.features, SPEC)
    for g, task in enumerate(SPEC.task_types):
        fitted = problem.fitted_quality[groups == g].mean(axis=0)
        np.testing.assert_allclose(fitted, TRUTH[task], atol=0.03)


def test_a_few_lucky_chat_verdicts_do_not_overturn_the_belief() -> None:
    # The closed loop in miniature, 5 % exploration: model-a serves most code and chat (greedy, propensity
    # 0.975) and is measured worse at code than declared; model-b's few explored answers (propensity 0.025,
    # importance weight 40) are all good, three of them on chat.
    rows = [_row(CODE, i, "model-a", float(i % 10 < 6), 0.975) for i in range(60)]
    rows += [_row(CODE, 100 + i, "model-b", 1.0, 0.025) for i in range(3)]
    rows += [_row(CHAT, i, "model-a", float(i % 10 < 8), 0.975) for i in range(20)]
    rows += [_row(CHAT, 100 + i, "model-b", 1.0, 0.025) for i in range(3)]
    groups = task_groups(np.asarray([r.features for r in rows]), SPEC)
    chat = groups == 1
    with_prior = problem_from_log(rows, SPEC, MODELS, [0.002, 0.002], prior=_prior(rows))
    assert with_prior.fitted_quality is not None
    a_chat, b_chat = with_prior.fitted_quality[chat].mean(axis=0)
    assert a_chat > b_chat, (a_chat, b_chat)
    assert b_chat == pytest.approx(0.7 + 0.3 * 3 / 13, abs=0.02)  # three labels against ten of belief
    # Code: model-a's sixty verdicts say 0.6, below model-b's belief and its own three verdicts.
    a_code, b_code = with_prior.fitted_quality[~chat].mean(axis=0)
    assert b_code > a_code
    # Without the prior model-b's chat is extrapolated from its (good) average and overtakes model-a.
    average = problem_from_log(rows, SPEC, MODELS, [0.002, 0.002])
    assert average.fitted_quality is not None
    a_chat, b_chat = average.fitted_quality[chat].mean(axis=0)
    assert b_chat > a_chat


def test_prior_fill_checks_its_penalty_and_keeps_the_prior_where_nothing_is_labelled() -> None:
    x = np.eye(3)
    prior = np.full((3, 2), 0.5)
    action = np.array([0, 0, 0])
    out = prior_fill(x, np.ones(3), action, np.ones(3), prior, np.array([0, 0, 1]), alpha=1.0)
    np.testing.assert_array_equal(out[:, 1], 0.5)  # model 1 has no labels anywhere
    assert (out[:2, 0] > 0.5).all()
    with pytest.raises(ValueError):
        prior_fill(x, np.ones(3), action, np.ones(3), prior, np.zeros(3, dtype=np.int64), alpha=-1.0)
    with pytest.raises(ValueError):
        problem_from_log(
            [LoggedExperience(x[0, :], "model-a", 1.0, quality=1.0)],
            FeatureSpec(personas=(), task_types=(), ngram_buckets=0, length_bins=(1,)),
            MODELS,
            [0.0, 0.0],
            prior=np.zeros((2, 2)),
        )


def test_the_root_prior_is_the_newest_policy_not_trained_on_the_log() -> None:
    spec = FeatureSpec(personas=(), task_types=(CODE,), ngram_buckets=0)

    def policy(version: str, source: str, models: list[str] = MODELS) -> Policy:
        layer = (np.zeros((spec.dim, len(models)), np.float32), np.zeros(len(models), np.float32))
        return Policy(version, models, spec, [], [layer], activation="linear", info={"source": source})

    served, initial = policy("loop-3", "experience log"), policy("prior-1", "catalog prior")
    offline = policy("dqn-offline", "dataset")
    assert root_policy([served, policy("loop-2", "experience log"), offline], served, initial) is offline
    assert root_policy([served, policy("loop-1", "experience log")], served, initial) is initial
    # A root that routes other models cannot be read on the logged rows: the served policy stands in.
    other = policy("old", "dataset", ["model-a", "model-c"])
    assert root_policy([served, other], served, initial) is served

"""The policy's text model: it learns which wording needs which model, serves what it was fitted on,
and travels in the policy artifact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from quantum_router.features import FeatureSpec, normalise_prompt
from quantum_router.learning.datasets import Dataset, feature_spec_for_dataset, featurise
from quantum_router.learning.metrics import apgr, two_model_curve
from quantum_router.learning.text_fit import PromptRows, TextFitConfig, fit_text_model, fit_with_cross_scores
from quantum_router.policy import Policy, PolicyFormatError, policy_from_bytes
from quantum_router.text_model import TextHashing, TextModel

FILLER = [
    "the",
    "a",
    "of",
    "which",
    "following",
    "is",
    "true",
    "statement",
    "answer",
    "value",
    "number",
    "choose",
    "best",
    "option",
]


def _prompts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Prompts of filler words; a third mention an integral, which only the strong model gets right."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 1 / 3
    prompts = []
    for is_hard in hard:
        words = list(rng.choice(FILLER, size=12))
        if is_hard:
            words.insert(int(rng.integers(len(words))), "integral")
        prompts.append(" ".join(words) + "?")
    # Weak: right on easy prompts 90% of the time, on hard ones 10%; strong: 90% everywhere.
    outcomes = np.stack([rng.random(n) < np.where(hard, 0.1, 0.9), rng.random(n) < 0.9], axis=1)
    return prompts, outcomes.astype(np.float32)


def test_text_model_ranks_unseen_prompts_that_need_the_strong_model_first() -> None:
    prompts, outcomes = _prompts(300, seed=0)
    model, cross = fit_with_cross_scores(prompts, ["t"] * 300, outcomes, TextFitConfig(buckets=4096))
    test_prompts, test_outcomes = _prompts(200, seed=1)
    scores = np.stack([model.scores(normalise_prompt(p), "t") for p in test_prompts])
    gain = scores[:, 1] - scores[:, 0]
    hard = np.array(["integral" in p for p in test_prompts])
    # Nearly every (hard, easy) pair is ordered hard first.
    assert (gain[hard][:, None] > gain[~hard][None, :]).mean() > 0.95
    curve = two_model_curve(gain, test_outcomes[:, 0], test_outcomes[:, 1])
    random_curve = two_model_curve(np.zeros(200), test_outcomes[:, 0], test_outcomes[:, 1])
    assert apgr(curve) > apgr(random_curve) + 0.2
    # Cross-fitted training scores come from models that did not see the row: less sure than in-sample.
    rows = PromptRows.build(prompts, ["t"] * 300, model.hashing)
    in_sample = np.stack([model.scores(normalise_prompt(p), "t") for p in prompts])
    assert np.abs(cross - outcomes).mean() > np.abs(in_sample - outcomes).mean()
    assert cross.shape == (300, 2) and len(rows.ngrams) == 300


def test_served_features_equal_the_rows_the_model_was_fitted_on() -> None:
    prompts, outcomes = _prompts(60, seed=2)
    tasks = ["algebra" if i % 2 else "history" for i in range(60)]
    hashing = TextHashing(buckets=2048)
    rows = PromptRows.build(prompts, tasks, hashing)
    model = fit_text_model(rows, outcomes.astype(np.float64), np.arange(60), TextFitConfig(), hashing)
    matrix_logits = np.asarray(rows.matrix(np.arange(60), model.idf) @ model.coef) + model.intercept
    served = np.stack([model.logits(normalise_prompt(p), t) for p, t in zip(prompts, tasks, strict=True)])
    np.testing.assert_allclose(served, matrix_logits, rtol=1e-5, atol=1e-5)
    # The task type is part of the input: the same words under another task type score differently.
    assert not np.allclose(model.logits(normalise_prompt(prompts[0]), "algebra"), served[0])
    data = Dataset(prompts=prompts, task_types=tasks, models=["w", "s"], outcomes=outcomes)
    spec = dataclasses.replace(feature_spec_for_dataset(data), text_scores=2)
    features = featurise(data, spec, model)
    np.testing.assert_allclose(features[:, -2:], 1.0 / (1.0 + np.exp(-served)), rtol=1e-5)


def _policy_with_text_model(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    hashing = TextHashing(buckets=256)
    text = TextModel(
        hashing=hashing,
        idf=rng.uniform(1, 3, 256).astype(np.float32),
        coef=rng.normal(size=(256, 2)).astype(np.float32),
        intercept=np.array([0.5, -0.5], np.float32),
    )
    spec = FeatureSpec(personas=(), task_types=("x", "y"), ngram_buckets=16, text_scores=2)
    layer = (rng.normal(size=(spec.dim, 2)).astype(np.float32), np.zeros(2, np.float32))
    return Policy("t-1", ["w", "s"], spec, [], [layer], activation="linear", text_model=text)


def test_policy_with_a_text_model_round_trips_and_old_artifacts_still_load() -> None:
    policy = _policy_with_text_model(3)
    loaded = policy_from_bytes(policy.to_bytes())
    assert loaded.text_model is not None and loaded.feature_spec == policy.feature_spec
    for prompt in ("What is the integral of x?", "Name the capital of France."):
        np.testing.assert_array_equal(loaded.features(prompt, "", "x"), policy.features(prompt, "", "x"))
        x = policy.features(prompt, "", "x")
        np.testing.assert_array_equal(loaded.q_values(x), policy.q_values(x))
    # A spec that promises text scores without a model (or the reverse) is not a policy.
    with pytest.raises(PolicyFormatError):
        dataclasses.replace(policy, text_model=None)
    # Artifacts written before text scores existed have no such key and load with none.
    old = policy.feature_spec.to_dict()
    del old["text_scores"]
    assert FeatureSpec.from_dict(old).text_scores == 0

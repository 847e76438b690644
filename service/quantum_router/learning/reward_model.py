"""Smoothed rewards for the bandit env: the text model's cross-fitted scores, or a ridge reward model
fitted on the training problem only.

On a full-information dataset the outcome of a model on a prompt is one binary draw, so Q(s, a) regressed
on it by SGD mostly learns noise (the 8,000 MMLU training prompts each carry one correct/wrong bit per
model). A per-model ridge regression on the same features, fitted on every model's outcome of every
*training* row, is a lower-variance target: the env then pays ``outcome_weight x outcome + (1 -
outcome_weight) x ridge prediction``. The test rows are never seen. The price is bias: the DQN can then
learn at most what the (linear) reward model captures, plus ``outcome_weight`` of the raw outcomes.

A problem from the experience log already has its reward model (``fitted_quality``, the direct method's
fill-in, shrunk toward the served policy's belief). Fitting a second ridge on top of it would shrink each
model toward its average over all task types again, the very thing the prior avoids: on a small log a
model's good labels on one task type lift its smoothed value on another. So the log's own reward model is
paid as is (:func:`fitted_problem`).
"""

from __future__ import annotations

import numpy as np

from quantum_router.learning.experience import fit_ridge
from quantum_router.learning.problem import Problem

#: What ``TrainConfig.reward`` may name: what the training env pays for quality (``train.resolved_reward``).
REWARDS = ("auto", "text", "ridge", "fitted", "outcome")


def _blend(problem: Problem, smooth: np.ndarray, outcome_weight: float) -> np.ndarray:
    """``outcome_weight`` x observed quality + (1 - ``outcome_weight``) x ``smooth``, as float32."""
    blended = outcome_weight * problem.quality.astype(np.float64) + (1.0 - outcome_weight) * smooth
    return blended.astype(np.float32)


def _check_weight(outcome_weight: float) -> None:
    if not 0.0 <= outcome_weight <= 1.0:
        raise ValueError("outcome_weight must be in [0, 1]")


def _paying(problem: Problem, quality: np.ndarray, reward_model: dict[str, object]) -> Problem:
    """``problem`` with its quality replaced (features, costs unchanged) and the reward model noted."""
    out = problem.subset(np.arange(len(problem)))
    out.quality = quality
    out.info = {**problem.info, "reward_model": reward_model}
    return out


def smoothed_quality(problem: Problem, alpha: float, outcome_weight: float = 0.0) -> np.ndarray:
    """(n, models) blend of each row's observed quality and a per-model ridge fit of it on the features."""
    _check_weight(outcome_weight)
    x = problem.features.astype(np.float64)
    xb = np.hstack([x, np.ones((len(x), 1))])
    low, high = float(problem.quality.min()), float(problem.quality.max())
    fitted = np.empty(problem.quality.shape, dtype=np.float64)
    for j in range(len(problem.models)):
        coef = fit_ridge(x, problem.quality[:, j].astype(np.float64), np.ones(len(x)), alpha)
        fitted[:, j] = np.clip(xb @ coef, low, high)
    return _blend(problem, fitted, outcome_weight)


def smoothed_problem(problem: Problem, alpha: float, outcome_weight: float = 0.0) -> Problem:
    """``problem`` with its quality replaced by :func:`smoothed_quality` (features, costs unchanged)."""
    quality = smoothed_quality(problem, alpha, outcome_weight)
    return _paying(problem, quality, {"ridge": alpha, "outcome_weight": outcome_weight})


def text_scored_quality(problem: Problem, outcome_weight: float = 0.0) -> np.ndarray:
    """(n, models) blend of each row's observed quality and the text model's cross-fitted score of it.

    The scores are the last ``feature_spec.text_scores`` features; numeric qualities outside [0, 1] were
    scaled onto it for fitting and are scaled back here.
    """
    _check_weight(outcome_weight)
    k = problem.feature_spec.text_scores
    if k != len(problem.models) or not problem.text_cross_fitted:
        raise ValueError("the text reward needs cross-fitted text scores for every model")
    low, high = float(problem.quality.min()), float(problem.quality.max())
    scores = problem.features[:, -k:].astype(np.float64)
    if low < 0.0 or high > 1.0:
        scores = low + scores * (high - low if high > low else 1.0)
    return _blend(problem, scores, outcome_weight)


def text_scored_problem(problem: Problem, outcome_weight: float = 0.0) -> Problem:
    """``problem`` with its quality replaced by :func:`text_scored_quality`."""
    quality = text_scored_quality(problem, outcome_weight)
    return _paying(problem, quality, {"text": "cross-fitted", "outcome_weight": outcome_weight})


def fitted_problem(problem: Problem, outcome_weight: float = 0.0) -> Problem:
    """``problem`` paying its own reward model (a log problem's ``fitted_quality``), blended with the observed
    quality (the outcome where one was logged, else the same prediction) by ``outcome_weight``."""
    _check_weight(outcome_weight)
    if problem.fitted_quality is None:
        raise ValueError("only a problem from the experience log has a fitted reward model")
    quality = _blend(problem, problem.fitted_quality.astype(np.float64), outcome_weight)
    return _paying(
        problem, quality, {"fitted": problem.info.get("reward_prior"), "outcome_weight": outcome_weight}
    )

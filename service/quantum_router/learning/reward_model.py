"""A smoothed reward for the bandit env: a ridge reward model fitted on the training problem only.

On a full-information dataset the outcome of a model on a prompt is one binary draw, so Q(s, a) regressed
on it by SGD mostly learns noise (the 8,000 MMLU training prompts each carry one correct/wrong bit per
model). A per-model ridge regression on the same features, fitted on every model's outcome of every
*training* row, is a lower-variance target: the env then pays ``outcome_weight x outcome + (1 -
outcome_weight) x ridge prediction``. The test rows are never seen. The price is bias: the DQN can then
learn at most what the (linear) reward model captures, plus ``outcome_weight`` of the raw outcomes.
"""

from __future__ import annotations

import numpy as np

from quantum_router.learning.experience import fit_ridge
from quantum_router.learning.problem import Problem


def smoothed_quality(problem: Problem, alpha: float, outcome_weight: float = 0.0) -> np.ndarray:
    """(n, models) blend of each row's observed quality and a per-model ridge fit of it on the features."""
    if not 0.0 <= outcome_weight <= 1.0:
        raise ValueError("outcome_weight must be in [0, 1]")
    x = problem.features.astype(np.float64)
    xb = np.hstack([x, np.ones((len(x), 1))])
    low, high = float(problem.quality.min()), float(problem.quality.max())
    fitted = np.empty(problem.quality.shape, dtype=np.float64)
    for j in range(len(problem.models)):
        coef = fit_ridge(x, problem.quality[:, j].astype(np.float64), np.ones(len(x)), alpha)
        fitted[:, j] = np.clip(xb @ coef, low, high)
    blended = outcome_weight * problem.quality.astype(np.float64) + (1.0 - outcome_weight) * fitted
    return blended.astype(np.float32)


def smoothed_problem(problem: Problem, alpha: float, outcome_weight: float = 0.0) -> Problem:
    """``problem`` with its quality replaced by :func:`smoothed_quality` (features, costs unchanged)."""
    out = problem.subset(np.arange(len(problem)))
    out.quality = smoothed_quality(problem, alpha, outcome_weight)
    out.info = {**problem.info, "reward_model": {"ridge": alpha, "outcome_weight": outcome_weight}}
    return out

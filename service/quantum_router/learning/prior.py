"""The served policy as the prior of the experience log's reward model (issue #15).

The log shows only the called model's outcome; a reward model fills in the others. Fitted from scratch per
model, it shrinks toward that model's average outcome on every task type, so a model with few labels on
one task type is assumed to do there what it does elsewhere (docs/routing.md, The closed loop on a wrong
catalog). Here it shrinks toward what the served policy believes instead: per model and task type, a ridge
regression of the residual (observed target minus the policy's belief) on the features, added to the
belief. With no labels for a model on a task type its prediction *is* the belief; with many, it approaches
the observed outcomes.

The belief is read off the policy's Q-values. Every policy the router serves scores ``Q = quality -
policy.cost_weight x model_costs`` (the catalog prior exactly, a trained policy as its reward was
defined: ``train.train_policy`` exports ``cost_weight`` in the same USD-per-1k units, and
``routing.adjusted_scores`` relies on the same arithmetic), so adding the cost term back gives the quality
it believes. For a trained policy this is exact when the log's per-row costs are proportional to the
catalog prices, else off by the difference, which routing already assumes away.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from quantum_router.features import FeatureSpec
from quantum_router.policy import Policy

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def believed_quality(policy: Policy, features: npt.NDArray[np.floating]) -> Floats:
    """(n, models) the quality ``policy`` believes each model gets on each row: its Q-values plus the cost
    penalty it subtracted (none when the policy records no model costs)."""
    q = policy.q_values(np.asarray(features, dtype=np.float32)).astype(np.float64)
    if not policy.model_costs:
        return q
    return q + policy.cost_weight * np.asarray(policy.model_costs, dtype=np.float64)[None, :]


def task_groups(features: npt.NDArray[np.floating], spec: FeatureSpec) -> Ints:
    """Each row's task type: its index in ``spec.task_types``, -1 when none of them is set."""
    start = spec.ngram_buckets + len(spec.personas)
    onehot = np.asarray(features)[:, start : start + len(spec.task_types)]
    if onehot.shape[1] == 0:
        return np.full(len(onehot), -1, dtype=np.int64)
    return np.where(onehot.max(axis=1) > 0, onehot.argmax(axis=1), -1).astype(np.int64)


def shrunk_residual(x: Floats, residual: Floats, weight: Floats, alpha: float, at: Floats) -> Floats:
    """A weighted ridge fit of ``residual`` on ``x`` (one model's labelled rows of one task type), evaluated
    at the rows ``at``; zero where nothing was learnt.

    The weights are rescaled to mean 1: importance weights (1 / propensity) correct *which* of the model's
    rows the fit listens to, not how much evidence there is; unscaled, a single explored row at 5 %
    exploration would count as 40 labels. The features are centred, so the intercept (the mean residual)
    separates from their slopes: it is ``sum(w r) / (n + alpha)``, the mean residual of ``n`` labels shrunk
    as if the prior were worth ``alpha`` more labels of residual 0. The slopes get the same penalty.
    """
    w = weight / weight.mean()
    mean_x = (w[:, None] * x).sum(axis=0) / w.sum()
    centred = x - mean_x
    intercept = float((w * residual).sum()) / (float(w.sum()) + alpha)
    gram = centred.T @ (centred * w[:, None]) + (alpha + 1e-9) * np.eye(x.shape[1])
    slope = np.linalg.solve(gram, centred.T @ (w * (residual - intercept)))
    return np.asarray(intercept + (at - mean_x) @ slope, dtype=np.float64)


def prior_fill(
    x: Floats,
    target: Floats,
    action: Ints,
    weight: Floats,
    prior: Floats,
    groups: Ints,
    alpha: float,
) -> Floats:
    """(n, models) predicted target: ``prior`` plus, for each model and task group with labels, the shrunk
    residual of that model's labelled rows in that group. A model with no labels in a group keeps the prior
    there; what a model does on one task type says nothing here about another (the prior carries that)."""
    if alpha < 0:
        raise ValueError("the ridge penalty must be non-negative")
    predicted = prior.copy()
    for j in range(prior.shape[1]):
        for g in np.unique(groups):
            rows = groups == g
            mine = rows & (action == j)
            if mine.any():
                residual = target[mine] - prior[mine, j]
                predicted[rows, j] += shrunk_residual(x[mine], residual, weight[mine], alpha, x[rows])
    return predicted

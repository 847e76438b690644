"""Turn the logged experience of the live router into a full-information training problem.

The log only shows the reward of the model that was called. A reward model (ridge regression per model on
the features, each row weighted by 1 / propensity so the logging policy's preferences do not bias the fit)
predicts the quality of the models that were not called: the direct method of off-policy learning. Given
the served policy's beliefs as a prior, it fits the residual from them per model and task type instead
(``prior.py``), so it shrinks toward the policy's belief rather than toward the model's average. The
observed outcome is kept for the model actually called. A user's feedback rating, when present, replaces the
automatic quality score. Costs are the log's own: each row's cost for the model called, and for the others
their mean logged cost (a model never called: its catalog price times the tokens the row used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.features import FeatureSpec
from quantum_router.learning.prior import prior_fill, task_groups
from quantum_router.learning.problem import Problem

MIN_PROPENSITY = 0.01  # caps importance weights at 100 so one unlikely row cannot dominate the fit
DEFAULT_RIDGE = 1.0  # without a prior: the per-model ridge penalty on the importance-weighted rows
# With a prior: how many labels of a model on a task type the served policy's belief is worth (the ridge
# penalty of prior.shrunk_residual); after n labels the estimate has moved n / (n + 10) of the way from the
# belief to their mean. The judge's verdicts are near-binary, so a few of them cannot tell a 0.1 quality gap
# from luck: three lucky verdicts (1.0 against a belief of 0.7) move it by 0.07. TrainConfig.prior_labels
# is the knob.
DEFAULT_PRIOR_LABELS = 10.0


@dataclass(frozen=True)
class LoggedExperience:
    """One routed request as the database logs it."""

    features: Sequence[float] | npt.NDArray[np.float32]
    action: str  # the model called
    propensity: float  # probability the router had of calling it
    quality: float | None = None  # automatic quality score in [0, 1]
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    rating: float | None = None  # user feedback mapped to [0, 1]; replaces quality when present
    source: str | None = None  # where ``quality`` came from (outcomes.QualitySource); None: not observed
    task_type: str = ""  # the request's task type (the text model's task token)
    # The prompt's packed n-gram buckets (``quantum_router.text_buckets``) when the serving policy had a text
    # model: what ``learning/text_refit.py`` refits it on. None when not logged.
    text_buckets: bytes | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> LoggedExperience:
        """Build from a dict (e.g. a database row); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

    def target(self, latency_weight: float) -> float | None:
        """The quality the reward model learns: rating or quality, minus a latency penalty per second."""
        value = self.rating if self.rating is not None else self.quality
        if value is None:
            return None
        return float(value) - latency_weight * self.latency_ms / 1000.0


def fit_ridge(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64], alpha: float
) -> npt.NDArray[np.float64]:
    """Weighted ridge regression with an unpenalised intercept (last coefficient)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    penalty = alpha * np.eye(xb.shape[1])
    penalty[-1, -1] = 0.0
    gram = xb.T @ (xb * w[:, None]) + penalty
    coef = np.asarray(np.linalg.solve(gram + 1e-9 * np.eye(xb.shape[1]), xb.T @ (w * y)), dtype=np.float64)
    return coef


def problem_from_log(
    experiences: Sequence[LoggedExperience | Mapping[str, Any]],
    feature_spec: FeatureSpec,
    models: list[str],
    model_costs_per_1k: list[float],
    ridge: float | None = None,
    latency_weight: float = 0.0,
    prior: npt.NDArray[np.floating] | None = None,
) -> Problem:
    """The problem from logged rows (rows without quality or rating, or of unknown models, are dropped).

    ``prior``: (len(experiences), models), one row per given experience (dropped ones included), the
    quality the served policy believes each model gets (``prior.believed_quality``), in the units of the
    target (so with a ``latency_weight``, minus its penalty). With it, the reward model is the prior plus a
    ridge fit of the residual per model and task type, and ``ridge`` counts how many labels the prior is
    worth (``prior.shrunk_residual``; default ``DEFAULT_PRIOR_LABELS``): a model without labels on a task
    type is predicted at the prior there. Without it (the default), each model gets one ridge fit (penalty
    ``ridge``, default ``DEFAULT_RIDGE``, on the importance-weighted rows) over every task type with an
    unpenalised intercept, which shrinks toward the model's average outcome, and a model never called is
    predicted at the average outcome of the log.
    """
    rows = [e if isinstance(e, LoggedExperience) else LoggedExperience.from_mapping(e) for e in experiences]
    keep = [i for i, r in enumerate(rows) if usable(r, models, latency_weight)]
    kept = [rows[i] for i in keep]
    if not kept:
        raise ValueError("no usable experiences (need a known model and a quality or rating)")
    x = feature_matrix(kept, feature_spec.dim)
    y = np.asarray([r.target(latency_weight) for r in kept], dtype=np.float64)
    action = np.asarray([models.index(r.action) for r in kept], dtype=np.int64)
    weight = 1.0 / np.maximum([r.propensity for r in kept], MIN_PROPENSITY)
    fitted = {name: int((action == j).sum()) for j, name in enumerate(models)}
    if prior is None:
        ridge = DEFAULT_RIDGE if ridge is None else ridge
        low, high = float(y.min()), float(y.max())
        predicted = mean_fill(x, y, action, weight, len(models), ridge)
    else:
        ridge = DEFAULT_PRIOR_LABELS if ridge is None else ridge
        if prior.shape != (len(rows), len(models)):
            raise ValueError(f"prior must be ({len(rows)}, {len(models)}), got {prior.shape}")
        believed = np.asarray(prior, dtype=np.float64)[keep]
        low, high = min(float(y.min()), float(believed.min())), max(float(y.max()), float(believed.max()))
        predicted = prior_fill(x, y, action, weight, believed, task_groups(x, feature_spec), ridge)
    # Keep the guesses inside the range of outcomes actually seen (and, with a prior, believed).
    quality = np.clip(predicted, low, high)
    fitted_quality = quality.copy()  # the reward model alone, for doubly robust estimates
    quality[np.arange(len(kept)), action] = y  # observed outcome where we have one
    costs = row_costs(
        np.asarray([r.cost_usd for r in kept], dtype=np.float64), action, weight, model_costs_per_1k
    )
    return Problem(
        models=list(models),
        feature_spec=feature_spec,
        features=x.astype(np.float32),
        quality=quality.astype(np.float32),
        costs_per_1k=list(model_costs_per_1k),
        info={
            "source": "experience log",
            "experiences": len(kept),
            "per_model": fitted,
            "ridge": ridge,
            "reward_prior": "served policy" if prior is not None else None,
        },
        row_costs=costs.astype(np.float32),
        fitted_quality=fitted_quality.astype(np.float32),
    )


def feature_matrix(rows: Sequence[LoggedExperience], dim: int) -> npt.NDArray[np.float64]:
    """(len(rows), dim) the rows' logged feature vectors; ValueError when they have another length."""
    if not rows:
        return np.zeros((0, dim), dtype=np.float64)
    x = np.asarray([np.asarray(r.features, dtype=np.float64) for r in rows], dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"logged features have {x.shape[-1]} values, the feature spec {dim}")
    return x


def usable(row: LoggedExperience, models: list[str], latency_weight: float = 0.0) -> bool:
    """True when a log problem learns from ``row``: a known model and an observed quality or rating."""
    return row.action in models and row.target(latency_weight) is not None


def usable_rows(
    experiences: Sequence[LoggedExperience | Mapping[str, Any]],
    models: list[str],
    latency_weight: float = 0.0,
) -> list[LoggedExperience]:
    """The rows a log problem is built from, in order: a known model and an observed quality or rating."""
    rows = [e if isinstance(e, LoggedExperience) else LoggedExperience.from_mapping(e) for e in experiences]
    return [r for r in rows if usable(r, models, latency_weight)]


def mean_fill(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    action: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float64],
    n_models: int,
    ridge: float,
) -> npt.NDArray[np.float64]:
    """(n, models) predicted target without a prior: per model, a weighted ridge over all its rows with an
    unpenalised intercept (so it shrinks toward the model's average); a model never called: the average."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    predicted = np.empty((len(x), n_models), dtype=np.float64)
    for j in range(n_models):
        mine = action == j
        if mine.any():
            predicted[:, j] = xb @ fit_ridge(x[mine], y[mine], weight[mine], ridge)
        else:
            # A model never called: nothing to learn from, so assume the average outcome.
            predicted[:, j] = float(np.average(y, weights=weight))
    return predicted


def row_costs(
    logged: npt.NDArray[np.float64],
    action: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float64],
    prices_per_1k: Sequence[float],
) -> npt.NDArray[np.float64]:
    """(n, models) USD per request: the logged cost where observed, else the model's weighted mean logged
    cost; a model never called costs its catalog price times the tokens the row's own model was paid for."""
    n, m = len(logged), len(prices_per_1k)
    prices = np.asarray(prices_per_1k, dtype=np.float64)
    paid = prices[action]
    tokens_k = np.divide(logged, paid, out=np.zeros(n), where=paid > 0)  # thousands of tokens per row
    costs = np.empty((n, m), dtype=np.float64)
    for j in range(m):
        mine = action == j
        costs[:, j] = np.average(logged[mine], weights=weight[mine]) if mine.any() else prices[j] * tokens_k
    costs[np.arange(n), action] = logged
    return costs

"""Fit the policy's text model (``quantum_router.text_model``) and its cross-fitted training scores.

One L2-regularised logistic regression per model (L-BFGS on a sparse design matrix; the intercept is not
penalised), on the same hashed TF-IDF rows the service builds. The scores of the *training* rows that the
Q-network and its reward are trained on are cross-fitted: each fold is scored by a model fitted on the
other folds, so training sees scores as noisy as the ones unseen prompts will get. Scored in-sample they
would look near-certain and the policy would learn to trust them too much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, sparse

from quantum_router.features import normalise_prompt
from quantum_router.text_model import IntArray, TextHashing, TextModel, sigmoid, weighted_row

FloatMatrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TextFitConfig:
    """Knobs of the text model; the defaults won the probe in docs/routing.md."""

    c: float = 1.0  # inverse L2 strength, as scikit-learn's LogisticRegression(C=...)
    folds: int = 5
    buckets: int = 65_536
    max_iter: int = 500
    seed: int = 0


@dataclass(frozen=True)
class PromptRows:
    """Each prompt's distinct n-gram buckets and task bucket, hashed once and reused by every fit."""

    ngrams: list[IntArray]
    task: IntArray

    @classmethod
    def build(cls, prompts: Sequence[str], task_types: Sequence[str], hashing: TextHashing) -> PromptRows:
        """Hash every prompt."""
        return cls(
            ngrams=[hashing.buckets_of(normalise_prompt(p)) for p in prompts],
            task=np.asarray([hashing.task_bucket(t) for t in task_types], dtype=np.int64),
        )

    def idf(self, rows: IntArray, buckets: int) -> npt.NDArray[np.float32]:
        """Smoothed inverse document frequency over ``rows``: ln((1 + n) / (1 + df)) + 1."""
        df = np.zeros(buckets, dtype=np.float64)
        for i in rows:
            df[self.ngrams[i]] += 1.0
        return (np.log((1.0 + len(rows)) / (1.0 + df)) + 1.0).astype(np.float32)

    def matrix(self, rows: IntArray, idf: npt.NDArray[np.float32]) -> sparse.csr_matrix:
        """The design matrix of ``rows`` (one CSR row each, as ``weighted_row`` builds it)."""
        indices, values, indptr = [], [], [0]
        for i in rows:
            idx, val = weighted_row(self.ngrams[i], int(self.task[i]), idf)
            indices.append(idx)
            values.append(val)
            indptr.append(indptr[-1] + len(idx))
        return sparse.csr_matrix(
            (np.concatenate(values), np.concatenate(indices), np.asarray(indptr)),
            shape=(len(rows), len(idf)),
        )


def fit_logistic(
    x: sparse.csr_matrix,
    y: FloatMatrix,
    weight: FloatMatrix,
    c: float,
    max_iter: int,
    prior: tuple[FloatMatrix, float] | None = None,
) -> tuple[FloatMatrix, float]:
    """Weighted L2 logistic regression on soft targets in [0, 1]; returns (coefficients, intercept).

    Without ``prior`` the penalty pulls the coefficients to 0 and the intercept is free. With ``prior``
    (coefficients, intercept) it pulls both to the prior's values and the fit starts there: a MAP update
    with the prior model as the mean of a Gaussian prior of variance ``c`` (``learning/text_refit.py``).
    The intercept is penalised then too, so a handful of rows cannot swing a model's base rate.
    """
    dim = x.shape[1]
    xt = x.T.tocsr()
    centre = np.zeros(dim + 1)
    if prior is not None:
        centre[:dim], centre[dim] = prior[0], prior[1]
    # Which parameters the penalty reaches: every coefficient, and the intercept only under a prior.
    penalised = np.ones(dim + 1)
    penalised[dim] = 1.0 if prior is not None else 0.0

    def loss(params: FloatMatrix) -> tuple[float, FloatMatrix]:
        beta, bias = params[:dim], params[dim]
        z = x @ beta + bias
        delta = (params - centre) * penalised
        value = float(np.sum(weight * (np.logaddexp(0.0, z) - y * z)) + delta @ delta / (2.0 * c))
        residual = weight * (sigmoid(z) - y)
        grad = delta / c
        grad[:dim] += xt @ residual
        grad[dim] += residual.sum()
        return value, grad

    result = optimize.minimize(
        loss, centre.copy(), jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    params = np.asarray(result.x, dtype=np.float64)
    return params[:dim], float(params[dim])


def _scaled(quality: FloatMatrix) -> FloatMatrix:
    # Binary outcomes stay as they are; numeric qualities are mapped onto [0, 1] for the logistic loss
    # (reward_model.text_scored_quality maps the scores back).
    low, high = float(quality.min()), float(quality.max())
    if low >= 0.0 and high <= 1.0:
        return quality
    return (quality - low) / (high - low if high > low else 1.0)


def fit_text_model(
    rows: PromptRows, quality: FloatMatrix, train: IntArray, config: TextFitConfig, hashing: TextHashing
) -> TextModel:
    """Per-model logistic regressions on the rows ``train`` of ``quality`` (n, models)."""
    target = _scaled(quality)
    idf = rows.idf(train, hashing.buckets)
    x = rows.matrix(train, idf)
    weight = np.ones(len(train))
    coefs, intercepts = [], []
    for j in range(quality.shape[1]):
        coef, bias = fit_logistic(x, target[train, j], weight, config.c, config.max_iter)
        coefs.append(coef)
        intercepts.append(bias)
    return TextModel(
        hashing=hashing,
        idf=idf,
        coef=np.stack(coefs, axis=1).astype(np.float32),
        intercept=np.asarray(intercepts, dtype=np.float32),
    )


def _score(model: TextModel, rows: PromptRows, which: IntArray) -> npt.NDArray[np.float32]:
    logits = np.asarray(rows.matrix(which, model.idf) @ model.coef) + model.intercept
    return sigmoid(logits).astype(np.float32)


def fit_on_all(
    prompts: Sequence[str],
    task_types: Sequence[str],
    quality: npt.ArrayLike,
    config: TextFitConfig | None = None,
) -> TextModel:
    """The text model fitted once on every row (no cross-fitted scores), e.g. to probe it alone."""
    config = config or TextFitConfig()
    hashing = TextHashing(buckets=config.buckets)
    rows = PromptRows.build(prompts, task_types, hashing)
    q = np.asarray(quality, dtype=np.float64)
    return fit_text_model(rows, q, np.arange(len(prompts)), config, hashing)


def fit_with_cross_scores(
    prompts: Sequence[str],
    task_types: Sequence[str],
    quality: npt.ArrayLike,
    config: TextFitConfig | None = None,
) -> tuple[TextModel, npt.NDArray[np.float32]]:
    """The text model fitted on every row, and each row's score from the model that did not see it.

    The scores (n, models) are probabilities on the scale the model was fitted on: for numeric qualities
    outside [0, 1] that is the min-max scaled quality.
    """
    config = config or TextFitConfig()
    q = np.asarray(quality, dtype=np.float64)
    n = len(prompts)
    if n < 2 * config.folds:
        raise ValueError(f"the text model needs at least {2 * config.folds} training prompts, got {n}")
    hashing = TextHashing(buckets=config.buckets)
    rows = PromptRows.build(prompts, task_types, hashing)
    fold = np.random.default_rng(config.seed).permutation(n) % config.folds
    scores = np.empty(q.shape, dtype=np.float32)
    everything = np.arange(n)
    for k in range(config.folds):
        held = everything[fold == k]
        model = fit_text_model(rows, q, everything[fold != k], config, hashing)
        scores[held] = _score(model, rows, held)
    return fit_text_model(rows, q, everything, config, hashing), scores

"""Refit the served text model on the judged rows of the experience log (a MAP update toward it).

Why: the log's feature vectors hold the served text model's scores, so without this ``train --from-log``
can only relearn a mapping from those scores, which were fitted on other prompts (on MMLU: other
subjects). Rows logged with their hashed n-gram buckets (``quantum_router.text_buckets``) let the text
model itself learn the new prompts.

How: per model, a logistic regression on the rows where that model was called, each weighted by
1 / propensity (capped as ``experience.MIN_PROPENSITY`` caps it; normalised to mean 1 per model so the
prior's strength is in rows), with the L2 penalty on the distance to the served coefficients and
intercept (``text_fit.fit_logistic``'s ``prior``). The served idf is kept, so the representation, and
with it every logged row's buckets, stays valid. A model never called keeps its served coefficients.

The log rows' new scores are cross-fitted as ``text_fit`` does for training rows: each fold is scored by
a refit that did not see it, so the Q-network does not learn to trust in-sample scores. Rows without
buckets (or hashed differently) keep their logged features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from quantum_router.learning.experience import MIN_PROPENSITY, LoggedExperience, usable_rows
from quantum_router.learning.text_fit import FloatMatrix, PromptRows, fit_logistic
from quantum_router.text_buckets import decode_buckets
from quantum_router.text_model import IntArray, TextModel, sigmoid


@dataclass(frozen=True)
class RefitConfig:
    """Knobs of the refit."""

    # Prior variance (inverse L2 strength on the distance to the served model); 1 is the strength the
    # served model was fitted with toward 0 (TextFitConfig.c).
    c: float = 1.0
    folds: int = 5
    max_iter: int = 200
    seed: int = 0


@dataclass(frozen=True)
class LogText:
    """The log rows a text model can be refitted on, in the refit's own order."""

    positions: IntArray  # index of each row in the experiences it came from
    prompts: PromptRows
    action: IntArray  # model index called
    target: FloatMatrix  # observed outcome, clipped to [0, 1]
    weight: FloatMatrix  # 1 / propensity, capped


@dataclass(frozen=True)
class LogRefit:
    """The outcome of :func:`refit_log`."""

    model: TextModel  # the served model when nothing was refitted
    experiences: list[LoggedExperience]  # the input, with cross-fitted scores where rows had buckets
    rows_per_model: dict[str, int] = field(default_factory=dict)  # rows each model's refit used
    refitted: bool = False
    # True when every labelled row got cross-fitted scores: they are then an honest reward model for the
    # whole log problem (``Problem.text_cross_fitted``), as on a dataset.
    covers_every_row: bool = False

    def describe(self) -> str:
        """One line for the command's output."""
        if not self.refitted:
            return f"text model kept as served (rows with buckets per model: {self.rows_per_model})"
        per = ", ".join(f"{name} {count}" for name, count in self.rows_per_model.items())
        return f"text model refitted toward the served one on logged rows with buckets: {per}"


def log_text(experiences: Sequence[LoggedExperience], served: TextModel, models: list[str]) -> LogText:
    """The rows with a label, a known model and buckets hashed as ``served`` hashes."""
    positions, ngrams, task, action, target, weight = [], [], [], [], [], []
    for i, row in enumerate(experiences):
        value = row.target(0.0)
        if row.text_buckets is None or value is None or row.action not in models:
            continue
        try:
            hashing, buckets = decode_buckets(row.text_buckets)
        except ValueError:
            continue
        if hashing != served.hashing:
            continue  # hashed for another model: its buckets mean other n-grams
        positions.append(i)
        ngrams.append(buckets)
        task.append(served.hashing.task_bucket(row.task_type))
        action.append(models.index(row.action))
        target.append(min(max(float(value), 0.0), 1.0))
        weight.append(1.0 / max(float(row.propensity), MIN_PROPENSITY))
    return LogText(
        positions=np.asarray(positions, dtype=np.int64),
        prompts=PromptRows(ngrams=ngrams, task=np.asarray(task, dtype=np.int64)),
        action=np.asarray(action, dtype=np.int64),
        target=np.asarray(target, dtype=np.float64),
        weight=np.asarray(weight, dtype=np.float64),
    )


def refit_text_model(
    served: TextModel, rows: LogText, which: IntArray, config: RefitConfig
) -> tuple[TextModel, list[int]]:
    """``served`` refitted on ``rows``' entries ``which``, per model on those where it was called; returns
    the model and how many rows each model's fit used (0: that model kept its served coefficients)."""
    coef = served.coef.astype(np.float64)
    intercept = served.intercept.astype(np.float64)
    used: list[int] = []
    for j in range(served.outputs):
        mine = which[rows.action[which] == j]
        used.append(len(mine))
        if not len(mine):
            continue
        weight = rows.weight[mine] / rows.weight[mine].mean()
        x = rows.prompts.matrix(mine, served.idf)
        prior = (coef[:, j].copy(), float(intercept[j]))
        coef[:, j], intercept[j] = fit_logistic(
            x, rows.target[mine], weight, config.c, config.max_iter, prior
        )
    model = TextModel(
        hashing=served.hashing,
        idf=served.idf,
        coef=coef.astype(np.float32),
        intercept=intercept.astype(np.float32),
    )
    return model, used


def score_rows(model: TextModel, rows: LogText, which: IntArray) -> npt.NDArray[np.float32]:
    """(len(which), models) probabilities of ``model`` on ``rows``' entries ``which``."""
    logits = np.asarray(rows.prompts.matrix(which, model.idf) @ model.coef) + model.intercept
    return sigmoid(logits).astype(np.float32)


def refit_log(
    experiences: Sequence[LoggedExperience],
    served: TextModel,
    models: list[str],
    config: RefitConfig | None = None,
) -> LogRefit:
    """Refit ``served`` on the log and put each bucketed row's cross-fitted scores in its features.

    The scores are the features' last ``served.outputs`` values. With fewer than two rows per fold nothing
    is refitted: the served model and the experiences come back unchanged.
    """
    config = config or RefitConfig()
    rows = log_text(experiences, served, models)
    n = len(rows.positions)
    counts = {name: int((rows.action == j).sum()) for j, name in enumerate(models)}
    if n < 2 * config.folds:
        return LogRefit(served, list(experiences), counts, refitted=False)
    everything = np.arange(n)
    fold = np.random.default_rng(config.seed).permutation(n) % config.folds
    scores = np.empty((n, served.outputs), dtype=np.float32)
    for k in range(config.folds):
        held = everything[fold == k]
        model, _ = refit_text_model(served, rows, everything[fold != k], config)
        scores[held] = score_rows(model, rows, held)
    model, used = refit_text_model(served, rows, everything, config)
    out = list(experiences)
    k = served.outputs
    for row, position in enumerate(rows.positions):
        features = np.asarray(out[position].features, dtype=np.float32).copy()
        features[-k:] = scores[row]
        out[position] = replace(out[position], features=features)
    covers = n == len(usable_rows(experiences, models))
    return LogRefit(model, out, dict(zip(models, used, strict=True)), refitted=True, covers_every_row=covers)

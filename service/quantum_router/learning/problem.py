"""The training problem every learner and evaluator works on: a full-information contextual bandit.

Row ``i`` is one context (a request) with its feature vector and, for every model, the quality that model
gets on it. Rewards are ``quality - cost_weight * normalised cost``, where costs are normalised by the most
expensive model so the weight is in quality units whatever the price scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.features import FeatureSpec
from quantum_router.text_model import TextModel

FloatMatrix = npt.NDArray[np.float32]


@dataclass
class Problem:
    """Features, per-model quality and per-model cost of a set of contexts."""

    models: list[str]
    feature_spec: FeatureSpec
    features: FloatMatrix  # (n, spec.dim)
    quality: FloatMatrix  # (n, len(models))
    costs_per_1k: list[float]  # USD per 1k tokens, catalog units, one per model
    task_types: list[str] = field(default_factory=list)  # one per row (may be empty for logs)
    info: dict[str, Any] = field(default_factory=dict)
    # The text model behind the last feature_spec.text_scores features, exported with the policy.
    text_model: TextModel | None = None
    # True when those scores were cross-fitted on this problem's own outcomes (a dataset), so they are an
    # honest reward model for it; logged features carry the serving policy's scores instead.
    text_cross_fitted: bool = False
    # (n, models) USD per request, when known per row (the experience log's own costs); rewards then charge
    # these instead of the catalog's per-model prices.
    row_costs: FloatMatrix | None = None
    # (n, models) the reward model's predicted quality before observed outcomes replace it (logs only).
    fitted_quality: FloatMatrix | None = None

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if self.features.ndim != 2 or self.features.shape[1] != self.feature_spec.dim:
            raise ValueError(f"features must be (n, {self.feature_spec.dim}), got {self.features.shape}")
        if self.quality.shape != (n, len(self.models)):
            raise ValueError(f"quality must be ({n}, {len(self.models)}), got {self.quality.shape}")
        if len(self.costs_per_1k) != len(self.models):
            raise ValueError("costs_per_1k needs one entry per model")
        if self.task_types and len(self.task_types) != n:
            raise ValueError("task_types needs one entry per row")
        if self.row_costs is not None and self.row_costs.shape != self.quality.shape:
            raise ValueError(f"row_costs must be ({n}, {len(self.models)}), got {self.row_costs.shape}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def normalised_costs(self) -> FloatMatrix:
        """Costs divided by the largest one (all zeros when every model is free)."""
        costs = np.asarray(self.costs_per_1k, dtype=np.float32)
        top = float(costs.max()) if costs.size else 0.0
        return costs / top if top > 0 else np.zeros_like(costs)

    def normalised_row_costs(self) -> FloatMatrix:
        """(n, models) costs divided by the most expensive model's: per row when known, else the catalog's."""
        if self.row_costs is None:
            return np.broadcast_to(self.normalised_costs[None, :], self.quality.shape).astype(np.float32)
        # Normalised by the highest per-model mean, so a weight of 1 still means "the most expensive
        # model's typical cost", as with catalog prices.
        top = float(self.row_costs.mean(axis=0).max()) if len(self) else 0.0
        return (self.row_costs / top if top > 0 else np.zeros_like(self.row_costs)).astype(np.float32)

    def rewards(self, cost_weight: float) -> FloatMatrix:
        """The (n, models) reward matrix for a cost weight in quality units per max cost."""
        return (self.quality - np.float32(cost_weight) * self.normalised_row_costs()).astype(np.float32)

    def subset(self, rows: npt.NDArray[np.int64]) -> Problem:
        """The problem restricted to ``rows`` (in that order)."""
        return Problem(
            models=list(self.models),
            feature_spec=self.feature_spec,
            features=self.features[rows],
            quality=self.quality[rows],
            costs_per_1k=list(self.costs_per_1k),
            task_types=[self.task_types[i] for i in rows] if self.task_types else [],
            info=dict(self.info),
            text_model=self.text_model,
            text_cross_fitted=self.text_cross_fitted,
            row_costs=self.row_costs[rows] if self.row_costs is not None else None,
            fitted_quality=self.fitted_quality[rows] if self.fitted_quality is not None else None,
        )

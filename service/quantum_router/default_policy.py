"""The prior policy shipped with the package: a linear Q-network built from the catalog's declared quality.

It is what a fresh install routes with before any training: for each task type, the catalog's quality
estimate of each model minus the cost penalty. Training replaces it with a learned network.
"""

from __future__ import annotations

import numpy as np

from quantum_router.catalog import Catalog
from quantum_router.features import FeatureSpec
from quantum_router.policy import Policy

DEFAULT_VERSION = "prior-1"
DEFAULT_COST_WEIGHT = 5.0
UNKNOWN_QUALITY = 0.7


def feature_spec_for(catalog: Catalog) -> FeatureSpec:
    """The default feature spec for a catalog's personas and task types."""
    return FeatureSpec(personas=tuple(catalog.personas), task_types=tuple(catalog.task_types))


def prior_policy(catalog: Catalog, cost_weight: float = DEFAULT_COST_WEIGHT) -> Policy:
    """A linear Q-network: Q(task, model) = declared quality - cost_weight x cost per 1k tokens."""
    spec = feature_spec_for(catalog)
    weights = np.zeros((spec.dim, len(catalog.models)), dtype=np.float32)
    task_offset = spec.ngram_buckets + len(spec.personas)
    for j, model in enumerate(catalog.models):
        for t, task in enumerate(spec.task_types):
            declared = model.declared_quality(task)
            quality = UNKNOWN_QUALITY if declared is None else declared
            weights[task_offset + t, j] = quality
    costs = [m.cost_per_1k_tokens for m in catalog.models]
    bias = np.array([-cost_weight * c for c in costs], dtype=np.float32)
    return Policy(
        version=DEFAULT_VERSION,
        models=catalog.model_names,
        feature_spec=spec,
        encoder=[],
        advantage=[(weights, bias)],
        activation="linear",
        cost_weight=cost_weight,
        model_costs=costs,
        info={"source": "catalog prior"},
    )

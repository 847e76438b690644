"""Model selection: score every model with the policy and choose epsilon-greedily, logging the propensity."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from quantum_router.features import FloatArray
from quantum_router.policy import Policy


class NoRoutableModel(Exception):
    """No model is both in the policy and allowed for this request."""


@dataclass(frozen=True)
class Decision:
    """The outcome of routing one request."""

    chosen: str
    ranking: list[str]
    propensity: float
    explored: bool
    scores: dict[str, float]


def adjusted_scores(policy: Policy, features: FloatArray, cost_weight: float | None) -> FloatArray:
    """Q-values shifted by the cost knob: moving it above the trained weight favours cheaper models."""
    q = policy.q_values(features)
    if cost_weight is None or not policy.model_costs:
        return q
    costs = np.asarray(policy.model_costs, dtype=np.float32)
    return q - np.float32(cost_weight - policy.cost_weight) * costs


def decide(
    policy: Policy,
    features: FloatArray,
    allowed: set[str],
    epsilon: float,
    rng: random.Random,
    cost_weight: float | None = None,
) -> Decision:
    """Pick a model: the best-scoring allowed one, or with probability ``epsilon`` a uniform random one."""
    scores = adjusted_scores(policy, features, cost_weight)
    candidates = [i for i, name in enumerate(policy.models) if name in allowed]
    if not candidates:
        raise NoRoutableModel("no allowed model is known to the policy")
    order = sorted(candidates, key=lambda i: float(scores[i]), reverse=True)
    n = len(order)
    greedy = order[0]
    chosen = greedy
    explored = False
    if n > 1 and rng.random() < epsilon:
        chosen = order[rng.randrange(n)]
        explored = chosen != greedy
    propensity = epsilon / n + (1.0 - epsilon if chosen == greedy else 0.0)
    ranking = [chosen] + [i for i in order if i != chosen]
    return Decision(
        chosen=policy.models[chosen],
        ranking=[policy.models[i] for i in ranking],
        propensity=propensity if n > 1 else 1.0,
        explored=explored,
        scores={policy.models[i]: float(scores[i]) for i in candidates},
    )

"""Off-policy value estimates of a routing policy on logged data, for the publish gate (#15).

Each logged row has the action taken, its propensity under the logging policy, and an observed reward.
For a deterministic target policy ``pi``: IPS averages ``1[pi(x) = a] / p * r``; doubly robust adds a
reward model's prediction ``q(x, pi(x))`` and corrects it with the same weighted residual
``1[pi(x) = a] / p * (r - q(x, a))``. Both come with a normal-approximation confidence interval on the
per-row terms. Not yet wired into ``train --from-log --publish``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from quantum_router.learning.experience import MIN_PROPENSITY

Z95 = 1.959964


@dataclass(frozen=True)
class Estimate:
    """A policy value and its 95 % confidence interval."""

    value: float
    low: float
    high: float


def _estimate(terms: npt.NDArray[np.float64]) -> Estimate:
    mean = float(terms.mean())
    half = Z95 * float(terms.std(ddof=1)) / np.sqrt(len(terms)) if len(terms) > 1 else float("inf")
    return Estimate(mean, mean - half, mean + half)


def ips(
    chosen: npt.NDArray[np.int64],
    action: npt.NDArray[np.int64],
    propensity: npt.NDArray[np.float64],
    reward: npt.NDArray[np.float64],
) -> Estimate:
    """Inverse propensity score estimate of the value of choosing ``chosen`` (one model index per row)."""
    weight = (chosen == action) / np.maximum(propensity, MIN_PROPENSITY)
    return _estimate(weight * reward)


def doubly_robust(
    chosen: npt.NDArray[np.int64],
    action: npt.NDArray[np.int64],
    propensity: npt.NDArray[np.float64],
    reward: npt.NDArray[np.float64],
    predicted: npt.NDArray[np.float64],
) -> Estimate:
    """Doubly robust estimate; ``predicted`` is a reward model's (n, models) prediction."""
    rows = np.arange(len(reward))
    weight = (chosen == action) / np.maximum(propensity, MIN_PROPENSITY)
    return _estimate(predicted[rows, chosen] + weight * (reward - predicted[rows, action]))

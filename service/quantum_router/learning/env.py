"""A one-step contextual bandit as a gymnasium environment, the form RLlib's DQN learns from.

``reset`` draws a context (a row of the training problem), the observation is its feature vector, the
action is a model index and ``step`` pays that model's reward and ends the episode. With terminal steps the
DQN target is just the reward, so Q(s, a) regresses on the expected reward of each model.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from quantum_router.learning.problem import Problem

Obs = npt.NDArray[np.float32]


def env_config_for(problem: Problem, cost_weight: float) -> dict[str, Any]:
    """The ``env_config`` RLlib hands to every copy of :class:`RoutingBanditEnv` (plain arrays only)."""
    return {
        "features": np.ascontiguousarray(problem.features, dtype=np.float32),
        "rewards": np.ascontiguousarray(problem.rewards(cost_weight), dtype=np.float32),
    }


class RoutingBanditEnv(gym.Env[Obs, np.int64]):
    """Contexts sampled uniformly with replacement; reward = quality - cost_weight * normalised cost."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        self._features: npt.NDArray[np.float32] = np.asarray(config["features"], dtype=np.float32)
        self._rewards: npt.NDArray[np.float32] = np.asarray(config["rewards"], dtype=np.float32)
        if self._features.shape[0] != self._rewards.shape[0] or not len(self._features):
            raise ValueError("features and rewards need the same, non-zero number of rows")
        dim = self._features.shape[1]
        # Bounds from the data itself (hashed n-grams are unit-normalised, one-hots 0/1).
        low, high = float(self._features.min()), float(self._features.max())
        self.observation_space = gym.spaces.Box(low, high, shape=(dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self._rewards.shape[1])
        # RLlib hands an EnvContext; its worker index keeps copies on different runners apart, since
        # RLlib seeds sub-env i of runner w with seed + w + i and those sums collide across runners.
        self._worker = int(getattr(config, "worker_index", 0))
        self._rng = np.random.default_rng([config.get("seed") or 0, self._worker])
        self._row = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode on a random context."""
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng([seed, self._worker])
        self._row = int(self._rng.integers(len(self._features)))
        return self._features[self._row], {"row": self._row}

    def step(self, action: np.int64) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Pay the chosen model's reward on the current context; the episode always ends here."""
        reward = float(self._rewards[self._row, int(action)])
        return self._features[self._row], reward, True, False, {"row": self._row}

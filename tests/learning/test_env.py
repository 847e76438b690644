"""The bandit environment follows the gymnasium API and pays the right reward."""

from __future__ import annotations

import numpy as np
from gymnasium.utils.env_checker import check_env

from quantum_router.learning.env import RoutingBanditEnv, env_config_for

from .conftest import synthetic_problem


def test_one_step_episodes_with_cost_penalised_rewards() -> None:
    problem, _ = synthetic_problem(30, seed=0)
    problem.costs_per_1k = [0.0, 0.0, 2.0]
    env = RoutingBanditEnv(env_config_for(problem, cost_weight=0.25))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=5)
    row = info["row"]
    np.testing.assert_array_equal(obs, problem.features[row])
    _, reward, terminated, truncated, _ = env.step(np.int64(2))
    assert terminated and not truncated
    assert reward == np.float32(problem.quality[row, 2] - 0.25)  # normalised cost of the top model is 1

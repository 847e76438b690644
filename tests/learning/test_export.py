"""Export of RLlib's DQN module into the numpy Policy: same Q-values as torch, lossless round trip."""

from __future__ import annotations

import numpy as np
import torch

from quantum_router.learning.env import RoutingBanditEnv
from quantum_router.learning.export import policy_from_state_dict
from quantum_router.learning.train import TrainConfig, build_config
from quantum_router.policy import policy_from_bytes

from .conftest import synthetic_problem


def _module(hidden: list[int]) -> torch.nn.Module:
    problem, _ = synthetic_problem(50, seed=1)
    config = build_config(problem, TrainConfig(hidden=hidden))
    # Building the module directly needs no Ray: the same spec RLlib builds inside its learner.
    module: torch.nn.Module = config.get_rl_module_spec(env=RoutingBanditEnv(config.env_config)).build()
    return module


def test_exported_policy_matches_torch_forward_and_round_trips() -> None:
    problem, _ = synthetic_problem(200, seed=2)
    for hidden in ([16], [32, 16]):
        module = _module(hidden)
        with torch.no_grad():
            # Random init has near-zero biases; perturb them so a wrong bias mapping would show.
            for name, param in module.named_parameters():
                if name.endswith("bias"):
                    param.add_(torch.randn_like(param) * 0.3)
            expected = module.compute_q_values({"obs": torch.from_numpy(problem.features)})[
                "qf_preds"
            ].numpy()
        policy = policy_from_state_dict(
            module.state_dict(),
            version="test",
            models=problem.models,
            feature_spec=problem.feature_spec,
            activation="relu",
            cost_weight=0.5,
            model_costs=problem.costs_per_1k,
            info={"steps": 0},
        )
        assert len(policy.encoder) == len(hidden)
        assert policy.value is not None
        q = policy.q_values(problem.features)
        np.testing.assert_allclose(q, expected, atol=1e-5)
        loaded = policy_from_bytes(policy.to_bytes())
        np.testing.assert_array_equal(loaded.q_values(problem.features), q)
        assert loaded.models == problem.models and loaded.feature_spec == problem.feature_spec
        assert loaded.cost_weight == 0.5 and loaded.info == {"steps": 0}

import random
from collections import Counter

import numpy as np
import pytest

from quantum_router.features import FeatureSpec
from quantum_router.policy import Policy
from quantum_router.routing import NoRoutableModel, decide

SPEC = FeatureSpec(personas=("p",), task_types=("t",), ngram_buckets=4)


def _linear(q: list[float], costs: list[float] | None = None, cost_weight: float = 0.0) -> Policy:
    w = np.zeros((SPEC.dim, len(q)), dtype=np.float32)
    return Policy(
        "v",
        [f"m{i}" for i in range(len(q))],
        SPEC,
        [],
        [(w, np.array(q, dtype=np.float32))],
        activation="linear",
        model_costs=costs or [],
        cost_weight=cost_weight,
    )


X = np.zeros(SPEC.dim, dtype=np.float32)


def test_greedy_picks_the_highest_q_and_ranks_the_rest() -> None:
    d = decide(_linear([0.1, 0.9, 0.5]), X, {"m0", "m1", "m2"}, 0.0, random.Random(0))
    assert d.chosen == "m1"
    assert d.ranking == ["m1", "m2", "m0"]
    assert d.propensity == 1.0
    assert not d.explored


def test_exploration_rate_and_propensities_match_epsilon() -> None:
    policy = _linear([0.1, 0.9, 0.5])
    rng = random.Random(1)
    decisions = [decide(policy, X, {"m0", "m1", "m2"}, 0.3, rng) for _ in range(4000)]
    share = Counter(d.chosen for d in decisions)["m1"] / len(decisions)
    assert share == pytest.approx(0.7 + 0.1, abs=0.03)
    props = {d.chosen: d.propensity for d in decisions}
    assert props["m1"] == pytest.approx(0.8)
    assert props["m0"] == pytest.approx(0.1)


def test_only_allowed_models_are_chosen() -> None:
    d = decide(_linear([0.1, 0.9]), X, {"m0"}, 0.0, random.Random(0))
    assert d.chosen == "m0"
    with pytest.raises(NoRoutableModel):
        decide(_linear([0.1]), X, {"other"}, 0.0, random.Random(0))


def test_cost_knob_moves_the_choice_to_the_cheaper_model() -> None:
    policy = _linear([0.6, 0.8], costs=[0.0, 0.1], cost_weight=1.0)
    rng = random.Random(0)
    assert decide(policy, X, {"m0", "m1"}, 0.0, rng, cost_weight=None).chosen == "m1"
    assert decide(policy, X, {"m0", "m1"}, 0.0, rng, cost_weight=1.0).chosen == "m1"
    assert decide(policy, X, {"m0", "m1"}, 0.0, rng, cost_weight=4.0).chosen == "m0"

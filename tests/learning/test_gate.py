"""The publish gate values two policies on the same logged rows and passes only a policy not worse."""

from __future__ import annotations

import random

import numpy as np

from quantum_router.catalog import load_catalog
from quantum_router.default_policy import feature_spec_for
from quantum_router.learning.experience import LoggedExperience
from quantum_router.learning.gate import evaluate
from quantum_router.policy import Policy
from tests.conftest import TEST_CATALOG

TRUE_QUALITY = {"cheap": 0.3, "strong": 0.9, "broken": 0.0, "slow": 0.1}


def _always(model: str, models: list[str]) -> Policy:
    """A linear policy whose greedy choice is ``model`` whatever the request."""
    spec = feature_spec_for(load_catalog(TEST_CATALOG))
    bias = np.array([1.0 if m == model else 0.0 for m in models], dtype=np.float32)
    weights = np.zeros((spec.dim, len(models)), dtype=np.float32)
    return Policy(f"always-{model}", models, spec, [], [(weights, bias)], activation="linear")


def _log(models: list[str], n: int = 400) -> list[LoggedExperience]:
    """Uniformly explored traffic (propensity 1/4) with noisy observed qualities."""
    spec = _always(models[0], models).feature_spec
    rng = random.Random(5)
    rows = []
    for i in range(n):
        action = rng.choice(models)
        features = np.zeros(spec.dim, dtype=np.float32)
        features[i % spec.dim] = 1.0
        quality = min(1.0, max(0.0, TRUE_QUALITY[action] + rng.gauss(0, 0.05)))
        rows.append(LoggedExperience(features, action, 0.25, quality=quality, cost_usd=0.0, source="judge"))
    return rows


def test_a_better_policy_passes_and_a_worse_one_does_not() -> None:
    catalog = load_catalog(TEST_CATALOG)
    models, costs = catalog.model_names, [m.cost_per_1k_tokens for m in catalog.models]
    rows = _log(models)
    strong, cheap = _always("strong", models), _always("cheap", models)
    better = evaluate(rows, strong, cheap, costs, cost_weight=0.0)
    assert better.passed
    assert better.rows == 400
    # Both estimators come close to the true values (400 rows, a quarter of them per model).
    for estimate, truth in ((better.new_dr, 0.9), (better.serving_dr, 0.3), (better.new_ips, 0.9)):
        assert abs(estimate.value - truth) < 0.03, (estimate, truth)
        assert estimate.low < estimate.value < estimate.high
    worse = evaluate(rows, cheap, strong, costs, cost_weight=0.0)
    assert not worse.passed
    assert worse.as_info()["passed"] is False and worse.as_info()["rows"] == 400


def test_the_cost_weight_can_turn_the_verdict() -> None:
    catalog = load_catalog(TEST_CATALOG)
    models, costs = catalog.model_names, [m.cost_per_1k_tokens for m in catalog.models]
    rows = [
        LoggedExperience(
            r.features,
            r.action,
            r.propensity,
            quality=r.quality,
            source="judge",
            cost_usd=0.02 if r.action == "strong" else 0.0005,
        )
        for r in _log(models)
    ]
    strong, cheap = _always("strong", models), _always("cheap", models)
    assert evaluate(rows, strong, cheap, costs, cost_weight=0.0).passed
    # Charging a whole quality unit per the most expensive model's cost makes the strong model not worth it.
    assert not evaluate(rows, strong, cheap, costs, cost_weight=1.0).passed


def test_the_new_policy_is_valued_on_the_features_it_reads() -> None:
    # A refitted text model changes the new policy's features (text_refit.refit_log); the serving policy
    # still reads the logged ones.
    catalog = load_catalog(TEST_CATALOG)
    models, costs = catalog.model_names, [m.cost_per_1k_tokens for m in catalog.models]
    rows = _log(models)
    reads_feature_0 = _always("cheap", models)
    reads_feature_0.advantage[0][0][0, models.index("strong")] = 10.0  # strong when feature 0 is set
    refreshed = []
    for r in rows:
        features = np.asarray(r.features).copy()
        features[0] = 1.0
        refreshed.append(
            LoggedExperience(features, r.action, r.propensity, quality=r.quality, source="judge")
        )
    cheap = _always("cheap", models)
    on_logged = evaluate(rows, reads_feature_0, cheap, costs, cost_weight=0.0)
    on_refreshed = evaluate(rows, reads_feature_0, cheap, costs, cost_weight=0.0, new_experiences=refreshed)
    assert on_logged.new_dr.value < 0.5 < 0.85 < on_refreshed.new_dr.value
    assert abs(on_refreshed.serving_dr.value - on_logged.serving_dr.value) < 1e-9

"""Which logged rows ``train --from-log`` learns from, and what each costs."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantum_router.db.models import Experience
from quantum_router.features import FeatureSpec
from quantum_router.learning.experience import LoggedExperience, problem_from_log
from quantum_router.log_training import logged, source_counts

DIM = 4


def _row(**fields: Any) -> Experience:
    values: dict[str, Any] = {
        "features": {"dim": DIM, "idx": [0], "val": [1.0]},
        "action": "a",
        "propensity": 0.5,
        "variations": [],
        "quality": None,
        "quality_source": None,
        "cost_usd": 0.01,
        "latency_ms": 100.0,
        "feedback_rating": None,
    }
    values.update(fields)
    return Experience(**values)


def test_only_observed_rows_are_used_and_counted_by_source() -> None:
    rows = [
        _row(),  # one answer, nothing observed: its prior is not a label
        _row(quality=0.5, quality_source="agreement"),
        _row(quality=0.0, quality_source="verifier"),
        _row(quality=0.0, quality_source="failure"),
        _row(quality=0.7, quality_source="judge"),
        _row(quality=1.0, quality_source="rating", feedback_rating=5.0),
        _row(feedback_rating=1.0),  # rated before the source column existed: the rating is the label
        _row(quality=0.9, quality_source="judge", features={"dim": 8, "idx": [], "val": []}),  # old spec
    ]
    used = logged(rows, DIM)
    assert len(used) == 6
    assert source_counts(used) == {"rating": 2, "judge": 1, "verifier": 1, "agreement": 1, "failure": 1}
    assert [e.target(0.0) for e in used] == [0.5, 0.0, 0.0, 0.7, 1.0, 0.0]


def test_the_chosen_models_own_variations_are_its_cost() -> None:
    variations = [{"model": "a", "cost_usd": 0.002}, {"model": "b", "cost_usd": 0.05}]
    row = _row(quality=0.5, quality_source="agreement", variations=variations, cost_usd=0.052)
    (used,) = logged([row], DIM)
    assert used.cost_usd == 0.002


def test_logged_costs_not_catalog_prices_set_the_cost_penalty() -> None:
    # The catalog says "verbose" is the cheaper model; the log shows it costs ten times more per request
    # (it writes ten times the tokens at half the price).
    spec = FeatureSpec(personas=(), task_types=("t",), ngram_buckets=2)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        x = np.zeros(spec.dim, np.float32)
        x[0], x[-1] = rng.random(), 1.0
        model = ("verbose", "terse")[i % 2]
        cost = 0.01 if model == "verbose" else 0.001
        rows.append(LoggedExperience(x, model, 0.5, quality=0.8, cost_usd=cost * (1 + 0.1 * rng.random())))
    problem = problem_from_log(rows, spec, ["verbose", "terse"], [0.0005, 0.001])
    assert problem.row_costs is not None
    observed = np.asarray([r.cost_usd for r in rows], dtype=np.float32)
    taken = np.asarray([i % 2 for i in range(200)])
    assert np.allclose(problem.row_costs[np.arange(200), taken], observed)  # each row's own cost
    rewards = problem.rewards(cost_weight=0.5)
    # Equal quality, so the logged cost decides: "terse" pays less on every row.
    assert (rewards[:, 1] > rewards[:, 0]).all()
    assert float(problem.normalised_row_costs()[:, 0].mean()) > 0.9


def test_a_model_never_called_costs_its_price_times_the_tokens_the_row_used() -> None:
    spec = FeatureSpec(personas=(), task_types=("t",), ngram_buckets=2)
    x = np.ones(spec.dim, np.float32)
    rows = [LoggedExperience(x, "a", 1.0, quality=0.5, cost_usd=0.002)]  # 2k tokens at 0.001 per 1k
    problem = problem_from_log(rows, spec, ["a", "never"], [0.001, 0.01])
    assert problem.row_costs is not None
    assert np.allclose(problem.row_costs[0], [0.002, 0.02])

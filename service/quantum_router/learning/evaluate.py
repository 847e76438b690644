"""Evaluate routers on held-out full-information data, against the standard baselines.

Every router is a score matrix (rows x models, higher is better). Its operating point is the argmax of
``score - cost_weight * normalised cost`` (a trained policy already has its cost weight inside Q), and its
knob sweep gives the PGR curve, APGR and CPT. Baselines: random scores, the cheapest model, the best single
model, the oracle (each row's true outcome) and a per-task-type prior (each task type's mean outcome per
model on the training split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.learning.metrics import Curve, apgr, cpt, router_curve
from quantum_router.learning.problem import Problem
from quantum_router.policy import Policy

Matrix = npt.NDArray[np.float64]


@dataclass
class RouterReport:
    """One router's numbers on the test rows."""

    name: str
    quality: float
    cost_usd: float  # mean price of the chosen model, USD per 1k tokens
    calls: dict[str, float]  # share of calls per model
    apgr: float | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    curve: Curve | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (no curve)."""
        return {
            "quality": self.quality,
            "cost_usd": self.cost_usd,
            "calls": self.calls,
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
        }


def weak_and_strong(problem: Problem) -> tuple[int, int]:
    """Weak = the cheapest model, strong = the best single model on these rows (ties: the cheaper)."""
    costs = np.asarray(problem.costs_per_1k)
    weak = int(np.argmin(costs))
    means = problem.quality.mean(axis=0)
    strong = int(max(range(len(costs)), key=lambda j: (round(float(means[j]), 9), -costs[j])))
    return weak, strong


def operating_choice(scores: Matrix, problem: Problem, cost_weight: float) -> npt.NDArray[np.int64]:
    """Each row's chosen model at a cost weight (quality units per normalised cost); ties to the cheaper."""
    costs = problem.normalised_costs.astype(np.float64)
    adjusted = scores - cost_weight * costs[None, :] - 1e-9 * costs[None, :]
    choice: npt.NDArray[np.int64] = np.argmax(adjusted, axis=1)
    return choice


def report(
    name: str, scores: Matrix, problem: Problem, cost_weight: float, knob: bool = True
) -> RouterReport:
    """Operating point and (for routers with a knob) the PGR curve metrics of one score matrix."""
    choice = operating_choice(scores, problem, cost_weight)
    rows = np.arange(len(problem))
    costs = np.asarray(problem.costs_per_1k, dtype=np.float64)
    counts = np.bincount(choice, minlength=len(problem.models)) / len(problem)
    out = RouterReport(
        name=name,
        quality=float(problem.quality[rows, choice].mean()),
        cost_usd=float(costs[choice].mean()),
        calls={m: float(counts[j]) for j, m in enumerate(problem.models)},
    )
    weak, strong = weak_and_strong(problem)
    if knob and weak != strong:
        curve = router_curve(scores, problem.quality, costs, weak, strong)
        out.curve = curve
        out.apgr = apgr(curve)
        out.cpt50 = cpt(curve, 0.5)
        out.cpt80 = cpt(curve, 0.8)
    return out


def prior_scores(train: Problem, test: Problem) -> Matrix:
    """Per-task-type mean outcome of each model on ``train``; unseen task types get the overall mean."""
    overall = train.quality.mean(axis=0).astype(np.float64)
    by_type: dict[str, Matrix] = {}
    types = np.asarray(train.task_types)
    for t in set(train.task_types):
        by_type[t] = train.quality[types == t].mean(axis=0).astype(np.float64)
    return np.stack([by_type.get(t, overall) for t in test.task_types]) if len(test) else np.zeros((0, 0))


def policy_scores(policy: Policy, problem: Problem) -> Matrix:
    """The policy's Q-values on the test rows, columns in ``problem.models`` order."""
    if problem.feature_spec != policy.feature_spec:
        raise ValueError("problem was featurised with a different feature spec than the policy's")
    missing = [m for m in problem.models if m not in policy.models]
    if missing:
        raise ValueError(f"policy does not know models {missing}")
    q = policy.q_values(problem.features).astype(np.float64)
    return q[:, [policy.models.index(m) for m in problem.models]]


def baselines(train: Problem | None, test: Problem, cost_weight: float, seed: int = 0) -> list[RouterReport]:
    """Random, cheapest, best single model, oracle and (with a training split) the per-task-type prior."""
    n, m = test.quality.shape
    weak, strong = weak_and_strong(test)
    out = [report("random", np.random.default_rng(seed).random((n, m)), test, 0.0)]
    single = np.zeros((n, m))
    single[:, weak] = 1.0
    out.append(report("cheapest", single, test, 0.0, knob=False))
    single = np.zeros((n, m))
    single[:, strong] = 1.0
    out.append(report("best-single", single, test, 0.0, knob=False))
    if train is not None and train.task_types and test.task_types:
        out.append(report("prior", prior_scores(train, test), test, cost_weight))
    out.append(report("oracle", test.quality.astype(np.float64), test, cost_weight))
    return out


def evaluate(
    test: Problem, train: Problem | None, policy: Policy | None, cost_weight: float, seed: int = 0
) -> list[RouterReport]:
    """All reports: the policy first (when given), then the baselines."""
    reports: list[RouterReport] = []
    if policy is not None:
        # Q already includes the policy's own cost penalty: operating point = its greedy choice.
        reports.append(report("policy", policy_scores(policy, test), test, 0.0))
    reports.extend(baselines(train, test, cost_weight, seed))
    return reports


def format_table(reports: list[RouterReport]) -> str:
    """A readable fixed-width table of the reports."""

    def num(value: float | None, pct: bool = False) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "-"
        return f"{value * 100:.1f}%" if pct else f"{value:.3f}"

    models = list(reports[0].calls) if reports else []
    short = [m.rsplit("/", 1)[-1][:18] for m in models]
    header = ["router", "quality", "USD/1k", "APGR", "CPT50", "CPT80", *[f"calls:{s}" for s in short]]
    lines = [header]
    for r in reports:
        lines.append(
            [
                r.name,
                num(r.quality),
                f"{r.cost_usd:.5f}",
                num(r.apgr),
                num(r.cpt50, pct=True),
                num(r.cpt80, pct=True),
                *[num(r.calls[m], pct=True) for m in models],
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in lines)

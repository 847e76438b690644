"""The gate before publishing a policy trained on the experience log: is it worth at least the serving one?

Both policies are valued on the same logged rows with off-policy estimators (``off_policy.py``): inverse
propensity (IPS, unbiased but noisy) and doubly robust (DR: the log problem's reward model, corrected by the
propensity-weighted residual where the logged action matches). The reward model is the one training used:
a prior policy's belief corrected by the log (``prior.py``), with the same prior and ``prior_labels``. A
policy is valued by its greedy choice, the one the router serves (exploration aside). The reward is the one
training optimises: the observed quality minus the cost weight times the row's normalised cost. The gate
passes when the new policy's DR value is not below the serving policy's.

The intervals treat the reward model as given although it was fitted on the same rows, so DR's are
optimistic (narrower than its real uncertainty); the verdict uses the point estimates, and both intervals
are stored with the published policy for a person to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quantum_router.learning.experience import (
    MIN_PROPENSITY,
    LoggedExperience,
    feature_matrix,
    problem_from_log,
    usable_rows,
)
from quantum_router.learning.off_policy import Estimate, doubly_robust, ips
from quantum_router.learning.prior import believed_quality
from quantum_router.policy import Policy


@dataclass(frozen=True)
class GateReport:
    """Both policies' estimated values on the logged rows, and the verdict."""

    rows: int
    new_ips: Estimate
    new_dr: Estimate
    serving_ips: Estimate
    serving_dr: Estimate

    @property
    def passed(self) -> bool:
        """True when the new policy is estimated not to be worse (doubly robust point estimates)."""
        return self.new_dr.value >= self.serving_dr.value

    def as_info(self) -> dict[str, Any]:
        """JSON for the published policy's ``info`` (shown by ``quantum-router policy list``)."""
        return {
            "rows": self.rows,
            "passed": self.passed,
            "new": {"ips": asdict(self.new_ips), "dr": asdict(self.new_dr)},
            "serving": {"ips": asdict(self.serving_ips), "dr": asdict(self.serving_dr)},
        }

    def describe(self) -> str:
        """One line per policy for the command's output."""

        def line(name: str, dr: Estimate, ip: Estimate) -> str:
            return (
                f"{name}: DR {dr.value:.4f} [{dr.low:.4f}, {dr.high:.4f}], "
                f"IPS {ip.value:.4f} [{ip.low:.4f}, {ip.high:.4f}]"
            )

        return (
            f"off-policy value on {self.rows} logged rows (95 % intervals)\n"
            f"  {line('new    ', self.new_dr, self.new_ips)}\n"
            f"  {line('serving', self.serving_dr, self.serving_ips)}"
        )


def evaluate(
    experiences: Sequence[LoggedExperience],
    new: Policy,
    serving: Policy,
    model_costs_per_1k: list[float],
    cost_weight: float,
    prior_labels: float | None = None,
    prior: Policy | None = None,
    new_experiences: Sequence[LoggedExperience] | None = None,
) -> GateReport:
    """Value ``new`` and ``serving`` (same models and feature spec) on the logged rows.

    The reward model's prior is ``prior``'s belief (None: the serving policy's), worth ``prior_labels``
    labels (``problem_from_log``'s ``ridge`` with a prior; None: its default): pass what training used.
    ``new_experiences`` are the same rows with the features ``new`` reads (its refitted text model's
    cross-fitted scores, ``text_refit.refit_log``); by default both read the logged features.
    """
    if new.models != serving.models:
        raise ValueError("the new and the serving policy route different models")
    rows = usable_rows(experiences, serving.models)
    new_rows = rows if new_experiences is None else usable_rows(new_experiences, serving.models)
    if len(new_rows) != len(rows):
        raise ValueError("new_experiences must be the same rows as experiences")
    dim = serving.feature_spec.dim
    problem = problem_from_log(
        rows,
        serving.feature_spec,
        serving.models,
        model_costs_per_1k,
        ridge=prior_labels,
        prior=believed_quality(prior or serving, feature_matrix(rows, dim)),
    )
    assert problem.fitted_quality is not None  # a log problem always has its reward model
    n = np.arange(len(rows))
    action = np.asarray([serving.models.index(r.action) for r in rows], dtype=np.int64)
    propensity = np.maximum([r.propensity for r in rows], MIN_PROPENSITY).astype(np.float64)
    costs = np.float32(cost_weight) * problem.normalised_row_costs()
    observed = (problem.rewards(cost_weight)[n, action]).astype(np.float64)
    predicted = (problem.fitted_quality - costs).astype(np.float64)

    def value(policy: Policy, features: np.ndarray) -> tuple[Estimate, Estimate]:
        chosen = np.argmax(policy.q_values(features), axis=1).astype(np.int64)
        return (
            ips(chosen, action, propensity, observed),
            doubly_robust(chosen, action, propensity, observed, predicted),
        )

    new_ips, new_dr = value(new, feature_matrix(new_rows, dim))
    serving_ips, serving_dr = value(serving, problem.features)
    return GateReport(len(rows), new_ips, new_dr, serving_ips, serving_dr)

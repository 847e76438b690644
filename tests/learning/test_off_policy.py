"""IPS and doubly robust estimates recover a policy's true value from another policy's log."""

from __future__ import annotations

import numpy as np

from quantum_router.learning.off_policy import doubly_robust, ips


def test_both_estimators_rank_a_better_policy_above_a_worse_one_from_a_random_log() -> None:
    rng = np.random.default_rng(0)
    n, models = 4000, 2
    context = rng.integers(0, 2, n)  # model 0 is right for context 0, model 1 for context 1
    truth = np.where(np.arange(models)[None, :] == context[:, None], 0.9, 0.2)
    action = rng.integers(0, models, n)  # uniform logging policy
    propensity = np.full(n, 0.5)
    reward = (rng.random(n) < truth[np.arange(n), action]).astype(np.float64)
    good, bad = context, 1 - context
    predicted = np.full((n, models), 0.55)  # an uninformative reward model: DR must still be right
    for chosen, value in ((good, 0.9), (bad, 0.2)):
        for estimate in (ips(chosen, action, propensity, reward),
                         doubly_robust(chosen, action, propensity, reward, predicted)):  # fmt: skip
            assert estimate.low < value < estimate.high, (estimate, value)
    assert ips(good, action, propensity, reward).low > ips(bad, action, propensity, reward).high

"""APGR / CPT / PGR on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantum_router.learning.metrics import apgr, cpt, router_curve, two_model_curve

# Four prompts; weak right on rows 0,1; strong right on rows 0,1,2 (so weak 0.5, strong 0.75, gap 0.25).
WEAK = np.array([1.0, 1.0, 0.0, 0.0])
STRONG = np.array([1.0, 1.0, 1.0, 0.0])


def test_oracle_reaches_pgr_one_after_one_quarter() -> None:
    # Oracle gap: only row 2 gains. Routing it first recovers the whole gap at share 1/4.
    curve = two_model_curve(STRONG - WEAK, WEAK, STRONG)
    assert curve.pgr[0] == 0.0
    assert curve.pgr[-1] == pytest.approx(1.0)
    assert cpt(curve, 1.0) == pytest.approx(0.25)
    assert cpt(curve, 0.5) == pytest.approx(0.125)
    # Area: triangle 0..1/4 (1/8) + flat 1 on [1/4, 1] (3/4) = 0.875.
    assert apgr(curve) == pytest.approx(0.875)


def test_indistinguishable_rows_give_the_random_diagonal() -> None:
    curve = two_model_curve(np.zeros(4), WEAK, STRONG)
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == pytest.approx(0.5)
    assert cpt(curve, 0.8) == pytest.approx(0.8)


def test_worst_order_routes_the_gaining_row_last() -> None:
    curve = two_model_curve(-(STRONG - WEAK), WEAK, STRONG)
    # PGR is 0 until share 3/4, then rises to 1 at share 1: area = 1/8.
    assert apgr(curve) == pytest.approx(0.125)
    assert cpt(curve, 0.5) == pytest.approx(0.875)


def test_pgr_can_exceed_one_when_weak_is_sometimes_right_alone() -> None:
    weak = np.array([1.0, 0.0])
    strong = np.array([0.0, 1.0])  # same average: no gap
    curve = two_model_curve(strong - weak, weak, strong)
    assert math.isnan(apgr(curve))
    assert cpt(curve, 0.5) is None


def test_router_curve_picks_columns_by_index() -> None:
    quality = np.stack([WEAK, STRONG], axis=1)
    scores = np.stack([np.zeros(4), STRONG - WEAK], axis=1)
    curve = router_curve(scores, quality, [0.1, 1.0], weak=0, strong=1)
    assert apgr(curve) == pytest.approx(0.875)


def test_three_models_cost_sweep_matches_hand_computation() -> None:
    # Costs 0, 1, 2: the middle model is as good as the strong one on row 1 only.
    quality = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    curve = router_curve(quality, quality, [0.0, 1.0, 2.0], weak=0, strong=2)
    # The oracle reaches full strong quality (0.75) at mean cost (1 + 2) / 4 = 0.75 -> x = 0.375.
    assert curve.pgr.max() == pytest.approx(1.0)
    reached = cpt(curve, 1.0)
    assert reached is not None and reached <= 0.375 + 1e-9

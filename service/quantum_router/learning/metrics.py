"""Router quality metrics from the RouteLLM paper (arXiv 2406.18665): PGR, APGR and CPT.

A router with a knob traces a curve of quality against the share of calls sent to the strong model (for
more than two models: against cost normalised so 0 is the cheapest model's and 1 the strong model's cost).
PGR = (quality - quality(weak)) / (quality(strong) - quality(weak)); APGR is the area under the PGR curve
for shares in [0, 1]; CPT(x) is the smallest share at which PGR reaches x.

For two models the knob is a threshold on the score gap, so the curve is exact: route the rows with the
largest gap first. Rows with equal gaps are taken in random order, and we use the expected curve of that
random order (linear inside a block of ties), so e.g. a router that cannot tell rows apart gets APGR 0.5
exactly instead of a seed-dependent number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """A knob sweep: x = strong-call share (or normalised cost) in [0, 1], ascending, with quality and PGR."""

    x: Array
    quality: Array
    pgr: Array


def pgr(quality: float | Array, weak: float, strong: float) -> Array:
    """Performance gap recovered; NaN when the strong model is not better than the weak one."""
    gap = strong - weak
    q = np.asarray(quality, dtype=np.float64)
    if gap <= 0:
        return np.full_like(q, np.nan)
    return (q - weak) / gap


def two_model_curve(gap_scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike) -> Curve:
    """The exact (tie-expected) curve of routing rows to the strong model in order of ``gap_scores``.

    ``weak``/``strong`` are each row's quality with the weak/strong model.
    """
    s = np.asarray(gap_scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64) - w
    n = len(s)
    if n == 0:
        raise ValueError("no rows")
    order = np.argsort(-s, kind="stable")
    s_sorted, g_sorted = s[order], g[order]
    # Ends of tie blocks: the curve is piecewise linear between them (expected value over tie orders).
    ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True)) + 1
    gained = np.concatenate([[0.0], np.cumsum(g_sorted)[ends - 1]])
    x = np.concatenate([[0.0], ends / n])
    quality = (w.sum() + gained) / n
    return Curve(x=x, quality=quality, pgr=pgr(quality, float(w.mean()), float(w.mean() + g.mean())))


def apgr(curve: Curve) -> float:
    """Area under the PGR curve over x in [0, 1] (exact for the piecewise-linear curve).

    Points outside [0, 1] are clipped away; the ends are extended flat if the curve does not reach them.
    """
    x, y = curve.x, curve.pgr
    if np.isnan(y).any():
        return float("nan")
    grid = np.union1d(np.clip(x, 0.0, 1.0), [0.0, 1.0])
    values = np.interp(grid, x, y)  # flat beyond the ends
    return float(np.sum((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2.0))


def cpt(curve: Curve, target: float) -> float | None:
    """Smallest x at which PGR reaches ``target`` (linear inside segments); None if it never does."""
    x, y = curve.x, curve.pgr
    if np.isnan(y).any():
        return None
    if y[0] >= target:
        return float(max(x[0], 0.0))
    for i in range(1, len(x)):
        if y[i] >= target:
            # y[i-1] < target <= y[i]: interpolate inside the segment.
            frac = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + frac * (x[i] - x[i - 1]))
    return None


def cost_sweep_curve(
    scores: npt.ArrayLike,
    quality: npt.ArrayLike,
    costs: npt.ArrayLike,
    weak: int,
    strong: int,
    points: int = 201,
) -> Curve:
    """Curve for any number of models: sweep λ in argmax(score - λ·cost); x = normalised mean cost.

    λ runs over quantiles of the rows' break-even values between pairs of models, which covers every
    switch of choice up to the resolution of ``points``. Ties go to the cheaper model.
    """
    s = np.asarray(scores, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    span = c[strong] - c[weak]
    if span <= 0:
        raise ValueError("the strong model must cost more than the weak one")
    breaks: list[Array] = []
    for a in range(len(c)):
        for b in range(len(c)):
            if c[a] > c[b]:
                breaks.append((s[:, a] - s[:, b]) / (c[a] - c[b]))
    pooled = np.concatenate(breaks) if breaks else np.zeros(1)
    lambdas = np.unique(np.concatenate([np.quantile(pooled, np.linspace(0, 1, points)), [0.0]]))
    lambdas = np.concatenate([[lambdas.min() - 1.0], lambdas, [lambdas.max() + 1.0]])
    tiebreak = c * 1e-12  # prefer the cheaper model on exact ties
    rows = np.arange(len(s))
    xs, qs = [], []
    for lam in lambdas:
        choice = np.argmax(s - lam * c - tiebreak, axis=1)
        xs.append((c[choice].mean() - c[weak]) / span)
        qs.append(q[rows, choice].mean())
    order = np.argsort(xs, kind="stable")
    x = np.asarray(xs)[order]
    qual = np.asarray(qs)[order]
    return Curve(x=x, quality=qual, pgr=pgr(qual, float(q[:, weak].mean()), float(q[:, strong].mean())))


def router_curve(
    scores: npt.ArrayLike, quality: npt.ArrayLike, costs: npt.ArrayLike, weak: int, strong: int
) -> Curve:
    """The knob sweep of a router that scores every (row, model): exact for two models."""
    s = np.asarray(scores, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if s.shape[1] == 2:
        return two_model_curve(s[:, strong] - s[:, weak], q[:, weak], q[:, strong])
    return cost_sweep_curve(s, q, costs, weak, strong)

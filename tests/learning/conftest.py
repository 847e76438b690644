"""Shared fixtures: the MMLU data folder, small synthetic problems and a local Ray without auth."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from quantum_router.features import FeatureSpec
from quantum_router.learning.problem import Problem
from quantum_router.settings import Settings

# Local Ray in tests: no token file in the home directory.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def mmlu_dir() -> Path:
    """The RouteLLM MMLU folder: the data_dir setting ($QR_DATA_DIR, else the repository's
    data/routellm-mmlu)."""
    return Settings().data_dir


@pytest.fixture
def mmlu_slice(tmp_path: Path) -> Path:
    """A folder with six MMLU subject files (about 700 prompts)."""
    source = mmlu_dir()
    if not source.is_dir():
        pytest.fail(f"MMLU data not found at {source}; set QR_DATA_DIR")
    target = tmp_path / "mmlu"
    target.mkdir()
    for name in ("anatomy", "astronomy", "college_biology", "high_school_physics", "marketing", "virology"):
        shutil.copy(source / f"mmlu_{name}.csv", target / f"mmlu_{name}.csv")
    return target


def synthetic_problem(n: int, seed: int) -> tuple[Problem, np.ndarray]:
    """Three models; the best one depends on the task type and the sign of one feature.

    The best model scores 0.9, the others 0.2, so a policy that learns the rule beats random by ~0.47.
    """
    spec = FeatureSpec(personas=(), task_types=("a", "b", "c", "d"), ngram_buckets=8)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, spec.dim), np.float32)
    x[:, :8] = rng.normal(size=(n, 8))
    task = rng.integers(4, size=n)
    x[np.arange(n), 8 + task] = 1.0
    x[:, -1] = 1.0
    best = (task + (x[:, 0] > 0)) % 3
    quality = np.full((n, 3), 0.2, np.float32)
    quality[np.arange(n), best] = 0.9
    problem = Problem(
        models=["m0", "m1", "m2"],
        feature_spec=spec,
        features=x,
        quality=quality,
        costs_per_1k=[0.001, 0.001, 0.001],
        task_types=[spec.task_types[t] for t in task],
    )
    return problem, best

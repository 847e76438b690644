"""A small policy with a text model over the test catalog's models, for tests of the logged buckets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quantum_router.features import FeatureSpec
from quantum_router.policy import Policy
from quantum_router.text_model import TextHashing, TextModel

MODELS = ["cheap", "strong", "broken", "slow"]  # tests/data/catalog.yaml


def text_policy(path: Path, version: str = "text-1") -> Policy:
    """A policy that reads only its text model's scores and routes to "cheap" (a large bias), saved to
    ``path``."""
    rng = np.random.default_rng(0)
    hashing = TextHashing(buckets=4096)
    text = TextModel(
        hashing=hashing,
        idf=rng.uniform(1, 3, hashing.buckets).astype(np.float32),
        coef=rng.normal(scale=0.1, size=(hashing.buckets, len(MODELS))).astype(np.float32),
        intercept=np.zeros(len(MODELS), np.float32),
    )
    spec = FeatureSpec(personas=(), task_types=(), ngram_buckets=0, text_scores=len(MODELS))
    layer = (np.zeros((spec.dim, len(MODELS)), np.float32), np.array([5.0, 0.0, -5.0, -5.0], np.float32))
    policy = Policy(version, MODELS, spec, [], [layer], activation="linear", text_model=text)
    policy.save(path)
    return policy

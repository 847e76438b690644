"""A per-model text model: logistic regression on idf-weighted hashed n-grams, evaluated with numpy.

Why it exists: a one-bit-per-prompt outcome is too noisy for the Q-network to learn wording from directly,
and the 512-bucket n-gram vector the network sees collides too much to carry it. This model sees 65,536
buckets of binary 1-2-gram presence, weighted by inverse document frequency and L2-normalised (the
TF-IDF weighting that worked best in the probe, docs/routing.md), plus a task-type token, and predicts
each model's probability of a good answer. Those probabilities are the last values of the policy's
feature vector. It is fitted in ``learning/text_fit.py`` and travels in the policy artifact as plain
arrays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.features import FloatArray, ngram_hashes

IntArray = npt.NDArray[np.int64]

#: Prefix of the pseudo n-gram that carries the task type; tokens never contain a NUL byte.
_TASK_TOKEN = b"\x00task "


@dataclass(frozen=True)
class TextHashing:
    """How a prompt becomes bucket indices; stored with the model so fitting and serving agree."""

    buckets: int = 65_536
    ngram_max: int = 2
    max_chars: int = 4096

    def buckets_of(self, normalised: str) -> IntArray:
        """Sorted distinct n-gram buckets of a normalised prompt (presence, not counts)."""
        hashes = ngram_hashes(normalised, self.ngram_max, self.max_chars)
        return np.unique(np.asarray(hashes, dtype=np.int64) % self.buckets)

    def task_bucket(self, task_type: str) -> int:
        """The bucket of the task-type token."""
        return zlib.crc32(_TASK_TOKEN + task_type.encode()) % self.buckets


def sigmoid(z: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """The logistic function: log-odds to probability."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def weighted_row(ngrams: IntArray, task_bucket: int, idf: FloatArray) -> tuple[IntArray, FloatArray]:
    """Indices and values of one prompt's row: L2-normalised idf weights of its n-grams, task token 1."""
    values = idf[ngrams].astype(np.float32)
    norm = float(np.linalg.norm(values))
    if norm > 0:
        values = values / norm
    # The task token sits outside the normalisation so a prompt's length does not dilute its task.
    indices = np.append(ngrams, task_bucket)
    return indices, np.append(values, np.float32(1.0)).astype(np.float32)


@dataclass(frozen=True)
class TextModel:
    """Per-model logistic regressions over one hashed TF-IDF representation."""

    hashing: TextHashing
    idf: FloatArray  # (buckets,)
    coef: FloatArray  # (buckets, models)
    intercept: FloatArray  # (models,)

    def __post_init__(self) -> None:
        buckets = self.hashing.buckets
        if self.idf.shape != (buckets,) or self.coef.ndim != 2 or self.coef.shape[0] != buckets:
            raise ValueError(f"text model arrays do not match {buckets} buckets")
        if self.intercept.shape != (self.coef.shape[1],):
            raise ValueError("text model needs one intercept per model")

    @property
    def outputs(self) -> int:
        """How many values :meth:`scores` returns (one per model)."""
        return int(self.coef.shape[1])

    def logits(self, normalised: str, task_type: str) -> FloatArray:
        """Log-odds of a good answer, per model."""
        return self.logits_of(self.hashing.buckets_of(normalised), task_type)

    def logits_of(self, ngrams: IntArray, task_type: str) -> FloatArray:
        """Log-odds of a good answer, per model, from a prompt already hashed by ``hashing.buckets_of``."""
        indices, values = weighted_row(ngrams, self.hashing.task_bucket(task_type), self.idf)
        out: FloatArray = values @ self.coef[indices] + self.intercept
        return out

    def scores(self, normalised: str, task_type: str) -> FloatArray:
        """Probability of a good answer, per model (the policy's text-score features)."""
        return self.scores_of(self.hashing.buckets_of(normalised), task_type)

    def scores_of(self, ngrams: IntArray, task_type: str) -> FloatArray:
        """:meth:`scores` of a prompt already hashed (the service hashes once and logs the buckets)."""
        return sigmoid(self.logits_of(ngrams, task_type)).astype(np.float32)

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Arrays for the policy archive (no pickles)."""
        h = self.hashing
        return {
            "text.hashing": np.asarray([h.buckets, h.ngram_max, h.max_chars], dtype=np.int64),
            "text.idf": self.idf.astype(np.float32),
            "text.coef": self.coef.astype(np.float32),
            "text.intercept": self.intercept.astype(np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> TextModel | None:
        """Inverse of :meth:`to_arrays`; None when the archive has no text model."""
        if "text.hashing" not in arrays.files:
            return None
        buckets, ngram_max, max_chars = (int(v) for v in arrays["text.hashing"])
        return cls(
            hashing=TextHashing(buckets=buckets, ngram_max=ngram_max, max_chars=max_chars),
            idf=arrays["text.idf"].astype(np.float32),
            coef=arrays["text.coef"].astype(np.float32),
            intercept=arrays["text.intercept"].astype(np.float32),
        )

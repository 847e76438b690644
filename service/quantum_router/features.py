"""Deterministic, cheap request features: hashed n-grams, persona, task type and length bins.

The feature spec travels inside every policy artifact, so a policy is always evaluated on the features it
was trained on. Hashing uses CRC32 (not Python's salted ``hash``) so vectors are identical across
processes and machines.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FeatureSpec:
    """Shape of the feature vector; stored with each policy."""

    personas: tuple[str, ...]
    task_types: tuple[str, ...]
    ngram_buckets: int = 512
    ngram_max: int = 2
    max_chars: int = 4096
    length_bins: tuple[int, ...] = field(default=(64, 256, 1024, 4096))

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        return self.ngram_buckets + len(self.personas) + len(self.task_types) + len(self.length_bins) + 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            personas=tuple(data["personas"]),
            task_types=tuple(data["task_types"]),
            ngram_buckets=int(data["ngram_buckets"]),
            ngram_max=int(data["ngram_max"]),
            max_chars=int(data["max_chars"]),
            length_bins=tuple(int(b) for b in data["length_bins"]),
        )


def normalise_prompt(prompt: str) -> str:
    """Case- and whitespace-insensitive form used for hashing and cache keys."""
    return " ".join(prompt.lower().split())


def _ngram_counts(text: str, spec: FeatureSpec) -> FloatArray:
    vec = np.zeros(spec.ngram_buckets, dtype=np.float32)
    tokens = _TOKEN.findall(text[: spec.max_chars])
    buckets = spec.ngram_buckets
    for n in range(1, spec.ngram_max + 1):
        for i in range(len(tokens) - n + 1):
            gram = " ".join(tokens[i : i + n]).encode()
            h = zlib.crc32(gram)
            # The top bit picks a sign so colliding n-grams cancel on average instead of piling up.
            vec[h % buckets] += 1.0 if h & 0x80000000 else -1.0
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec


def extract(prompt: str, persona: str, task_type: str, spec: FeatureSpec) -> FloatArray:
    """The feature vector of one request (float32, length ``spec.dim``)."""
    text = normalise_prompt(prompt)
    parts = [_ngram_counts(text, spec)]
    onehots = np.zeros(
        len(spec.personas) + len(spec.task_types) + len(spec.length_bins) + 2, dtype=np.float32
    )
    if persona in spec.personas:
        onehots[spec.personas.index(persona)] = 1.0
    offset = len(spec.personas)
    if task_type in spec.task_types:
        onehots[offset + spec.task_types.index(task_type)] = 1.0
    offset += len(spec.task_types)
    length = len(prompt)
    bin_index = next((i for i, edge in enumerate(spec.length_bins) if length < edge), len(spec.length_bins))
    onehots[offset + bin_index] = 1.0
    onehots[-1] = 1.0  # bias
    parts.append(onehots)
    return np.concatenate(parts)

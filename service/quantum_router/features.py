"""Deterministic, cheap request features: hashed n-grams, persona, task type, length bins and, when the
policy carries a text model, that model's per-model success probabilities.

The feature spec travels inside every policy artifact, so a policy is always evaluated on the features it
was trained on. Hashing uses CRC32 (not Python's salted ``hash``) so vectors are identical across
processes and machines.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

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
    # Trailing values from the policy's text model (one per model); 0 when the policy has none.
    text_scores: int = 0

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        return (
            self.ngram_buckets
            + len(self.personas)
            + len(self.task_types)
            + len(self.length_bins)
            + 2
            + self.text_scores
        )

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
            text_scores=int(data.get("text_scores", 0)),
        )


def normalise_prompt(prompt: str) -> str:
    """Case- and whitespace-insensitive form used for hashing and cache keys."""
    return " ".join(prompt.lower().split())


def ngram_hashes(text: str, ngram_max: int, max_chars: int) -> list[int]:
    """CRC32 of every 1..``ngram_max``-gram of tokens in the first ``max_chars`` of normalised ``text``."""
    tokens = _TOKEN.findall(text[:max_chars])
    return [
        zlib.crc32(" ".join(tokens[i : i + n]).encode())
        for n in range(1, ngram_max + 1)
        for i in range(len(tokens) - n + 1)
    ]


def _ngram_counts(hashes: list[int], buckets: int) -> FloatArray:
    vec = np.zeros(buckets, dtype=np.float32)
    for h in hashes:
        # The top bit picks a sign so colliding n-grams cancel on average instead of piling up.
        vec[h % buckets] += 1.0 if h & 0x80000000 else -1.0
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec /= norm
    return vec


def extract(
    prompt: str, persona: str, task_type: str, spec: FeatureSpec, text_model: TextScorer | None = None
) -> FloatArray:
    """The feature vector of one request (float32, length ``spec.dim``).

    ``text_model`` supplies the last ``spec.text_scores`` values and is required when that is non-zero.
    """
    text = normalise_prompt(prompt)
    parts: list[FloatArray] = []
    if spec.ngram_buckets:  # 0 when the policy's text model reads the wording instead
        parts.append(_ngram_counts(ngram_hashes(text, spec.ngram_max, spec.max_chars), spec.ngram_buckets))
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
    if spec.text_scores:
        if text_model is None:
            raise ValueError("this feature spec needs the policy's text model")
        parts.append(text_model.scores(text, task_type))
    return np.concatenate(parts)


class TextScorer(Protocol):
    """Anything that turns a normalised prompt and its task type into ``spec.text_scores`` values."""

    def scores(self, normalised: str, task_type: str) -> FloatArray:
        """One float32 value per model."""
        ...

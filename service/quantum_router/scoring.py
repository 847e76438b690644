"""Score finished variations and pick the best: the policy's prior for the model plus agreement with
the other answers (self-consistency), discounted for truncated or empty output."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+")


def _tokens(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def agreement(texts: Sequence[str]) -> list[float]:
    """For each text, its mean Jaccard similarity to the others (1.0 when it stands alone)."""
    sets = [_tokens(t) for t in texts]
    scores = []
    for i, a in enumerate(sets):
        others = [b for j, b in enumerate(sets) if j != i]
        if not others:
            scores.append(1.0)
            continue
        sims = [len(a & b) / len(a | b) if a | b else 0.0 for b in others]
        scores.append(sum(sims) / len(sims))
    return scores


def score_answers(
    texts: Sequence[str], priors: Sequence[float], finish_reasons: Sequence[str]
) -> list[float]:
    """Scores in [0, 1]; ``priors`` are the policy's expected quality of each answer's model."""
    agree = agreement(texts)
    alone = len(texts) == 1
    scores = []
    for text, prior, finish, a in zip(texts, priors, finish_reasons, agree, strict=True):
        p = min(max(prior, 0.0), 1.0)
        score = p if alone else 0.5 * p + 0.5 * a
        if not text.strip():
            score = 0.0
        elif finish == "length":
            score *= 0.8
        scores.append(round(score, 6))
    return scores

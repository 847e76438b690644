"""The quality the experience log records: only outcomes that were observed, with where each came from.

The scorer (``scoring.py``) blends the policy's prior into the scores that pick the best variation; that is
fine for picking, but a logged label built from the prior teaches the learner its own predictions back. So
the label is computed here from observations only, and is None when there is none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from quantum_router.scoring import agreement

# A truncated answer is worth less than a finished one (as in scoring.py).
LENGTH_DISCOUNT = 0.8


class QualitySource(StrEnum):
    """Where a logged quality came from, in order of precedence (a rating beats everything)."""

    RATING = "rating"  # the user's feedback
    JUDGE = "judge"  # a judge model's verdict, after the response was sent
    VERIFIER = "verifier"  # a cheap check: code that does not parse, a known answer
    AGREEMENT = "agreement"  # self-consistency of two or more answers to the request
    FAILURE = "failure"  # the chosen model failed or answered nothing


@dataclass(frozen=True)
class Observed:
    """A label: a quality in [0, 1] and its source."""

    quality: float
    source: QualitySource


def observed_quality(
    chosen_ok: bool,
    chosen_text: str | None,
    chosen_finish: str | None,
    verdict: float | None,
    texts: Sequence[str],
    chosen_index: int | None,
) -> Observed | None:
    """The observed quality of the chosen model's answer, or None when nothing was observed.

    ``chosen_ok`` is whether the chosen model itself answered (a fallback's answer does not count);
    ``verdict`` is the verifiers' on that answer; ``texts`` are every successful answer to the request and
    ``chosen_index`` the chosen model's among them.
    """
    if not chosen_ok or chosen_text is None or not chosen_text.strip():
        return Observed(0.0, QualitySource.FAILURE)
    if verdict is not None:
        return Observed(round(min(max(verdict, 0.0), 1.0), 6), QualitySource.VERIFIER)
    if len(texts) >= 2 and chosen_index is not None:
        score = agreement(texts)[chosen_index]
        if chosen_finish == "length":
            score *= LENGTH_DISCOUNT
        return Observed(round(score, 6), QualitySource.AGREEMENT)
    return None

"""The logged label is an observation or nothing; verifiers give cheap verdicts without running code."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantum_router.outcomes import Observed, QualitySource, observed_quality
from quantum_router.verifiers import ExactMatch, PythonParses, build_verifiers, prompt_key, verify

GOOD = "Here it is:\n```python\ndef rev(xs):\n    return xs[::-1]\n```"
BROKEN = "Here it is:\n```python\ndef rev(xs)\n    return xs[::-1]\n```"


def test_one_answer_without_a_verdict_logs_no_quality() -> None:
    assert observed_quality(True, "an answer", "stop", None, ["an answer"], 0) is None


def test_a_failed_or_empty_choice_is_an_observed_zero() -> None:
    zero = Observed(0.0, QualitySource.FAILURE)
    assert observed_quality(False, None, None, None, ["fallback"], None) == zero
    assert observed_quality(True, "  ", "stop", None, ["  "], 0) == zero


def test_two_answers_log_their_agreement_not_the_prior() -> None:
    same = observed_quality(True, "answer: alpha", "stop", None, ["answer: alpha", "answer: alpha"], 0)
    differ = observed_quality(True, "answer: alpha", "stop", None, ["answer: alpha", "answer: bravo"], 0)
    assert same == Observed(1.0, QualitySource.AGREEMENT)
    # The Jaccard similarity of {answer, alpha} and {answer, bravo}.
    assert differ == Observed(0.333333, QualitySource.AGREEMENT)
    truncated = observed_quality(True, "answer: alpha", "length", None, ["answer: alpha"] * 2, 0)
    assert truncated == Observed(0.8, QualitySource.AGREEMENT)


def test_a_verdict_beats_agreement() -> None:
    result = observed_quality(True, BROKEN, "stop", 0.0, [BROKEN, BROKEN], 0)
    assert result == Observed(0.0, QualitySource.VERIFIER)


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (GOOD, None),  # parses: no verdict, parsing says nothing about correctness
        (BROKEN, 0.0),
        ("def rev(xs): return xs[::-1]", None),  # no fence: the whole answer is the code
        ("Sure! def rev(xs) return reversed", 0.0),
        ("```py\nok = 1\n```\nand\n```python\nnot ok(\n```", 0.0),  # every block must parse
        ("__import__('os').system('touch /tmp/pwned')", None),  # parsed, never run
    ],
)
def test_python_that_does_not_parse_scores_zero(answer: str, verdict: float | None) -> None:
    assert PythonParses().verify("code_generation", "reverse a list", answer) == verdict


def test_the_parse_check_applies_to_code_generation_only() -> None:
    assert PythonParses().verify("chat", "hi", BROKEN) is None


def test_exact_match_against_a_known_answer(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(
        '{"prompt": "2+2?", "answer": "4"}\n{"prompt": "capital of France?", "answer": "Paris"}\n'
    )
    check = ExactMatch.from_jsonl(path)
    assert check.verify("chat", "capital of France?", "The answer: paris.") == 1.0
    assert check.verify("chat", "2+2?", "answer: 5") == 0.0
    assert check.verify("chat", "unknown prompt", "anything") is None
    assert prompt_key("2+2?") != prompt_key("2+2? ")


def test_the_lowest_verdict_wins_and_settings_add_exact_match(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text('{"prompt": "write x", "answer": "x = 1"}\n')
    verifiers = build_verifiers(path)
    assert len(verifiers) == 2
    # Matches the known answer but does not parse: one failed check fails the answer.
    assert verify(verifiers, "code_generation", "write x", "answer: x = 1 )") == 0.0
    assert verify(build_verifiers(None), "chat", "write x", "answer: x = 1") is None

"""Cheap checks of an answer that give an observed verdict without a judge or a user.

A verifier returns a score in [0, 1] when it can tell, or None when it cannot (a different task type, no
known answer). The interface is one method so more checks can be added; :func:`build_verifiers` is the one
place that picks them by settings. Nothing here executes model output: code is only parsed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

_PYTHON_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FINAL_ANSWER = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
_PUNCTUATION = re.compile(r"[^\w\s]")


class Verifier(Protocol):
    """Checks one answer to one prompt."""

    def verify(self, task_type: str, prompt: str, answer: str) -> float | None:
        """A score in [0, 1], or None when this verifier has no verdict on the answer."""
        ...


def python_blocks(answer: str) -> list[str]:
    """The answer's ```python fenced blocks, or the whole answer when it has none."""
    blocks = _PYTHON_BLOCK.findall(answer)
    return blocks if blocks else [answer]


class PythonParses:
    """``code_generation``: an answer whose Python does not parse scores 0.

    Code that parses earns no verdict (None): parsing says nothing about whether it does the task.
    """

    task_types: frozenset[str] = frozenset({"code_generation"})

    def verify(self, task_type: str, prompt: str, answer: str) -> float | None:
        """0.0 when a Python block (or the unfenced answer) is a syntax error, else None."""
        if task_type not in self.task_types:
            return None
        for block in python_blocks(answer):
            try:
                ast.parse(block)
            except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
                return 0.0
        return None


def normalise_answer(text: str) -> str:
    """The final answer of a text, compared case-, space- and punctuation-insensitively: what follows the
    last ``answer:`` when there is one, else the whole text."""
    finals = _FINAL_ANSWER.findall(text)
    value = finals[-1] if finals else text
    return " ".join(_PUNCTUATION.sub(" ", value.lower()).split())


def prompt_key(prompt: str) -> str:
    """How a known answer is looked up: the SHA-256 of the prompt (as ``experiences.prompt_hash``)."""
    return hashlib.sha256(prompt.encode()).hexdigest()


class ExactMatch:
    """Prompts with a known answer (from a dataset): 1.0 when the answer matches it, else 0.0."""

    def __init__(self, answers: Mapping[str, str]) -> None:
        # Keyed by prompt hash so a large dataset need not keep its prompts in memory twice.
        self._answers = {key: normalise_answer(value) for key, value in answers.items()}

    def verify(self, task_type: str, prompt: str, answer: str) -> float | None:
        """1.0 or 0.0 for a prompt with a known answer, None for any other."""
        expected = self._answers.get(prompt_key(prompt))
        if expected is None:
            return None
        return 1.0 if normalise_answer(answer) == expected else 0.0

    @classmethod
    def from_jsonl(cls, path: Path) -> ExactMatch:
        """Load ``{"prompt": ..., "answer": ...}`` lines."""
        answers: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                answers[prompt_key(str(row["prompt"]))] = str(row["answer"])
        return cls(answers)


def verify(verifiers: Sequence[Verifier], task_type: str, prompt: str, answer: str) -> float | None:
    """The lowest verdict any verifier gives (one failed check fails the answer), or None."""
    verdicts = [v for v in (f.verify(task_type, prompt, answer) for f in verifiers) if v is not None]
    return min(verdicts) if verdicts else None


def build_verifiers(answers_file: Path | None) -> list[Verifier]:
    """The verifiers the settings ask for: Python parsing always, exact match when a file of known
    answers is configured (``QR_VERIFIER_ANSWERS_FILE``)."""
    verifiers: list[Verifier] = [PythonParses()]
    if answers_file is not None:
        verifiers.append(ExactMatch.from_jsonl(answers_file))
    return verifiers

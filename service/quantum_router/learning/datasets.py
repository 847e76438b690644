"""Full-information datasets: CSVs with a ``prompt`` column and one outcome column per model.

A file's outcome columns hold ``True``/``False`` or numbers; any other column (recorded responses, ids) is
ignored. A folder of CSVs is one dataset whose task type per row is the file stem (``mmlu_anatomy``), so a
policy trained on it carries those stems as its feature spec's ``task_types``: the subjects are not the
catalog's task types, and the one-hot lets the network learn a per-subject prior.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from quantum_router.catalog import load_catalog
from quantum_router.features import FeatureSpec, extract
from quantum_router.learning.problem import Problem
from quantum_router.settings import PACKAGE_DIR
from quantum_router.text_model import TextModel

if TYPE_CHECKING:
    from quantum_router.learning.text_fit import TextFitConfig

PROMPT_COLUMN = "prompt"
TASK_TYPE_COLUMN = "task_type"
DEFAULT_PERSONA = ""

# Published prices (USD per million tokens, input/output averaged 1:1) of the models in the RouteLLM MMLU
# data (data/routellm-mmlu/README.md in the repository); used when a model is not in the catalog.
KNOWN_PRICES_PER_MILLION: dict[str, float] = {
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.60,
    "gpt-4-1106-preview": 20.0,
}

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass
class Dataset:
    """Prompts with every model's outcome (1.0 correct / 0.0 wrong, or a numeric quality)."""

    prompts: list[str]
    task_types: list[str]
    models: list[str]
    outcomes: npt.NDArray[np.float32]  # (n, len(models))
    source: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: npt.NDArray[np.int64]) -> Dataset:
        """The rows ``rows`` of this dataset."""
        return Dataset(
            prompts=[self.prompts[i] for i in rows],
            task_types=[self.task_types[i] for i in rows],
            models=list(self.models),
            outcomes=self.outcomes[rows],
            source=self.source,
        )

    @property
    def subjects(self) -> list[str]:
        """Distinct task types in first-seen order."""
        return list(dict.fromkeys(self.task_types))


def _parse_outcome(value: str) -> float | None:
    text = value.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def load_csv(path: Path, task_type: str | None = None) -> Dataset:
    """Read one CSV; the task type is a ``task_type`` column, else ``task_type``, else the file stem."""
    # MMLU prompts with long passages exceed the csv module's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or PROMPT_COLUMN not in rows[0]:
        raise ValueError(f"{path}: needs a header with a {PROMPT_COLUMN!r} column and at least one row")
    models: list[str] = []
    columns: list[list[float]] = []
    for name in rows[0]:
        if name in (PROMPT_COLUMN, TASK_TYPE_COLUMN) or name is None:
            continue
        parsed = [_parse_outcome(row[name] or "") for row in rows]
        # Only columns where every value is an outcome count; free text (e.g. responses) is ignored.
        if all(v is not None for v in parsed):
            models.append(name)
            columns.append([float(v) for v in parsed if v is not None])
    if not models:
        raise ValueError(f"{path}: no outcome columns (True/False or numbers)")
    default_task = task_type if task_type is not None else path.stem
    return Dataset(
        prompts=[row[PROMPT_COLUMN] for row in rows],
        task_types=[row.get(TASK_TYPE_COLUMN) or default_task for row in rows],
        models=models,
        outcomes=np.asarray(columns, dtype=np.float32).T.copy(),
        source=str(path),
    )


def load_dataset(path: Path) -> Dataset:
    """Load a CSV file, or every ``*.csv`` in a folder (sorted; all files must share the model columns)."""
    if path.is_file():
        return load_csv(path)
    files = sorted(path.glob("*.csv"))
    if not files:
        raise ValueError(f"{path}: no CSV files")
    parts = [load_csv(f) for f in files]
    models = parts[0].models
    for part in parts[1:]:
        if part.models != models:
            raise ValueError(f"{part.source}: model columns {part.models} differ from {models}")
    return Dataset(
        prompts=[p for part in parts for p in part.prompts],
        task_types=[t for part in parts for t in part.task_types],
        models=list(models),
        outcomes=np.concatenate([part.outcomes for part in parts]),
        source=str(path),
    )


def dataset_digest(data: Dataset) -> str:
    """SHA-256 of the rows (prompts, task types, model names, outcomes), so a policy can tell its
    training dataset from another one wherever the files are stored."""
    digest = hashlib.sha256()
    for text in (*data.models, *data.task_types, *data.prompts):
        digest.update(text.encode())
        digest.update(b"\x1f")  # a separator, so ("ab", "c") and ("a", "bc") differ
    digest.update(np.ascontiguousarray(data.outcomes, dtype=np.float32).tobytes())
    return digest.hexdigest()


def random_split(data: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Seeded split of prompts into train and test (disjoint)."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_test = max(1, round(len(data) * test_fraction))
    return data.subset(np.sort(order[n_test:])), data.subset(np.sort(order[:n_test]))


def subject_split(data: Dataset, seed: int, test_fraction: float = 0.5) -> tuple[Dataset, Dataset]:
    """Split by task type: train on a seeded share of the subjects and test on the rest."""
    subjects = data.subjects
    if len(subjects) < 2:
        raise ValueError("a split by subject needs at least two task types")
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_test = min(len(subjects) - 1, max(1, round(len(subjects) * test_fraction)))
    test_subjects = {subjects[i] for i in order[:n_test]}
    rows = np.arange(len(data))
    is_test = np.array([t in test_subjects for t in data.task_types])
    return data.subset(rows[~is_test]), data.subset(rows[is_test])


def split_dataset(data: Dataset, how: str, seed: int, test_fraction: float = 0.2) -> tuple[Dataset, Dataset]:
    """``how`` is ``random`` (prompts, ``test_fraction`` held out) or ``subject`` (half the subjects)."""
    if how == "random":
        return random_split(data, test_fraction, seed)
    if how == "subject":
        return subject_split(data, seed)
    raise ValueError(f"unknown split {how!r}: use random or subject")


def parse_cost_overrides(items: list[str]) -> dict[str, float]:
    """``["MODEL=USD_PER_MILLION", ...]`` -> {model: USD per million tokens}."""
    out: dict[str, float] = {}
    for item in items:
        # rsplit: model names may contain '=' less often than '/', but never after the price.
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise ValueError(f"--cost expects MODEL=USD_PER_MILLION_TOKENS, got {item!r}")
        out[name] = float(value)
    return out


def model_costs_per_1k(
    models: list[str], overrides: dict[str, float], catalog_file: Path | None = None
) -> list[float]:
    """USD per 1k tokens per model: the override, else the catalog, else a known published price."""
    catalog = load_catalog(catalog_file or PACKAGE_DIR / "data" / "catalog.yaml")
    known = set(catalog.model_names)
    costs: list[float] = []
    for name in models:
        if name in overrides:
            costs.append(overrides[name] / 1000.0)
        elif name in known:
            costs.append(catalog.model(name).cost_per_1k_tokens)
        elif name in KNOWN_PRICES_PER_MILLION:
            costs.append(KNOWN_PRICES_PER_MILLION[name] / 1000.0)
        else:
            raise ValueError(f"no cost known for model {name!r}: pass --cost {name}=USD_PER_MILLION_TOKENS")
    return costs


def feature_spec_for_dataset(data: Dataset, ngram_buckets: int = 512) -> FeatureSpec:
    """A feature spec whose task types are the dataset's subjects (sorted, so it is stable)."""
    return FeatureSpec(
        personas=(), task_types=tuple(sorted(set(data.task_types))), ngram_buckets=ngram_buckets
    )


def featurise(
    data: Dataset,
    spec: FeatureSpec,
    text_model: TextModel | None = None,
    text_scores: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """The (n, spec.dim) feature matrix; task types unknown to the spec get an all-zero one-hot.

    The text-score columns come from ``text_scores`` when given (cross-fitted training scores), else from
    ``text_model``.
    """
    if not len(data):
        return np.zeros((0, spec.dim), dtype=np.float32)
    # Given scores replace the text model's: extract the rest and append them.
    own = replace(spec, text_scores=0) if text_scores is not None else spec
    pairs = zip(data.prompts, data.task_types, strict=True)
    rows = np.stack([extract(p, DEFAULT_PERSONA, t, own, text_model) for p, t in pairs])
    if text_scores is None:
        return rows
    return np.hstack([rows, np.asarray(text_scores, dtype=np.float32)])


def to_problem(
    data: Dataset,
    spec: FeatureSpec,
    costs_per_1k: list[float],
    text_model: TextModel | None = None,
    text_scores: npt.NDArray[np.float32] | None = None,
) -> Problem:
    """Turn a dataset into a training/evaluation problem on ``spec``'s features (see :func:`featurise`)."""
    return Problem(
        models=list(data.models),
        feature_spec=spec,
        features=featurise(data, spec, text_model, text_scores),
        quality=data.outcomes.astype(np.float32),
        costs_per_1k=list(costs_per_1k),
        task_types=list(data.task_types),
        info={"dataset": data.source, "rows": len(data)},
        text_model=text_model,
        text_cross_fitted=text_scores is not None,
    )


def training_problems(
    data: Dataset, train: Dataset, test: Dataset, costs_per_1k: list[float], text: TextFitConfig | None
) -> tuple[Problem, Problem]:
    """Train and test problems (split from ``data``) on one spec; with ``text`` a text model is fitted on
    ``train`` alone and the spec is its scores plus length bins.

    Training rows get cross-fitted text scores, test rows the scores of the model fitted on every training
    row, which is the model the policy carries.
    """
    if text is None:
        spec = feature_spec_for_dataset(data)
        return to_problem(train, spec, costs_per_1k), to_problem(test, spec, costs_per_1k)
    from quantum_router.learning.text_fit import fit_with_cross_scores  # scipy: training only

    model, cross = fit_with_cross_scores(train.prompts, train.task_types, train.outcomes, text)
    # The text model reads the wording and the task type; the network gets its scores, the length bins and
    # the bias. Also giving it the 512 n-gram buckets and the subject one-hot cost 0.01-0.025 APGR on MMLU:
    # SGD fitted noise in them (docs/routing.md).
    spec = FeatureSpec(personas=(), task_types=(), ngram_buckets=0, text_scores=model.outputs)
    return to_problem(train, spec, costs_per_1k, model, cross), to_problem(test, spec, costs_per_1k, model)

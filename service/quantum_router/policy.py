"""The routing policy: a small Q-network evaluated with numpy, stored as a versioned ``.npz`` artifact.

Artifact layout (loaded with ``allow_pickle=False``, so loading never runs code):

- ``meta``: a JSON string with ``version``, ``models``, ``feature_spec``, ``activation``, ``cost_weight``,
  ``model_costs`` and free-form ``info``;
- ``encoder.{i}.w`` / ``encoder.{i}.b``: shared hidden layers (activation after each);
- ``advantage.{i}.w`` / ``advantage.{i}.b``: the action head (activation between its layers, not after);
- optional ``value.{i}.w`` / ``value.{i}.b``: a state-value head; when present the network is dueling and
  Q = V + A - mean(A), which is how RLlib's default DQN module computes it;
- optional ``text.*``: the text model whose per-model probabilities end the feature vector
  (``quantum_router.text_model``).

Loading checks the metadata's types and every layer's shape, then runs one forward pass; an artifact that
fails any of that (truncated, wrong types, wrong shapes, non-finite weights) raises
:class:`PolicyFormatError`, so it is refused when published and skipped when polled.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.features import FeatureSpec, FloatArray, extract
from quantum_router.text_buckets import encode_buckets
from quantum_router.text_model import IntArray, TextModel

Layers = list[tuple[FloatArray, FloatArray]]

_ACTIVATIONS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "linear": lambda x: x,
}


class PolicyFormatError(ValueError):
    """The artifact is not a valid policy."""


@dataclass
class Policy:
    """A Q-network over a fixed model list and feature spec."""

    version: str
    models: list[str]
    feature_spec: FeatureSpec
    encoder: Layers
    advantage: Layers
    value: Layers | None = None
    activation: str = "relu"
    cost_weight: float = 0.0
    model_costs: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    text_model: TextModel | None = None

    def __post_init__(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise PolicyFormatError(f"unknown activation {self.activation!r}")
        if not self.models:
            raise PolicyFormatError("a policy routes at least one model")
        if not self.advantage:
            raise PolicyFormatError("the advantage head needs at least one layer")
        hidden = _check_layers("encoder", self.encoder, self.feature_spec.dim, "the feature spec")
        source = f"encoder.{len(self.encoder) - 1}" if self.encoder else "the feature spec"
        out = _check_layers("advantage", self.advantage, hidden, source)
        if out != len(self.models):
            raise PolicyFormatError(f"network has {out} outputs for {len(self.models)} models")
        if self.value is not None and _check_layers("value", self.value, hidden, source) != 1:
            raise PolicyFormatError("the value head must end in one output")
        if self.model_costs and len(self.model_costs) != len(self.models):
            raise PolicyFormatError("model_costs must have one entry per model")
        text_outputs = self.text_model.outputs if self.text_model is not None else 0
        if text_outputs != self.feature_spec.text_scores:
            raise PolicyFormatError(
                f"feature spec expects {self.feature_spec.text_scores} text scores,"
                f" the text model gives {text_outputs}"
            )
        self._act = _ACTIVATIONS[self.activation]

    def check(self) -> None:
        """Run one forward pass on a sample request: an artifact that cannot route is refused before it
        is published or served, instead of failing every request."""
        arrays = [
            a for head in (self.encoder, self.advantage, self.value or []) for layer in head for a in layer
        ]
        if self.text_model is not None:
            arrays += [self.text_model.idf, self.text_model.coef, self.text_model.intercept]
        if not all(np.isfinite(a).all() for a in arrays):
            raise PolicyFormatError("weights must be finite")
        spec = self.feature_spec
        persona, task_type = (spec.personas or ("",))[0], (spec.task_types or ("",))[0]
        try:
            q = self.q_values(self.features("a sample request to check the policy", persona, task_type))
        except (ValueError, TypeError, IndexError, ArithmeticError) as exc:
            raise PolicyFormatError(f"the policy fails on a sample request: {exc}") from exc
        if q.shape != (len(self.models),) or not np.isfinite(q).all():
            raise PolicyFormatError(f"the policy gives Q-values {q!r} on a sample request")

    def _mlp(self, x: FloatArray, layers: Layers, last_activation: bool) -> FloatArray:
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if last_activation or i < len(layers) - 1:
                x = self._act(x)
        return x

    def features(self, prompt: str, persona: str, task_type: str) -> FloatArray:
        """The feature vector this policy reads for a request."""
        return extract(prompt, persona, task_type, self.feature_spec, self.text_model)

    def features_and_buckets(
        self, prompt: str, persona: str, task_type: str
    ) -> tuple[FloatArray, bytes | None]:
        """:meth:`features`, and the prompt's packed n-gram buckets for the experience log when the policy
        has a text model (None otherwise): the prompt is normalised and hashed once for both."""
        if self.text_model is None:
            return self.features(prompt, persona, task_type), None
        scorer = _RecordingScorer(self.text_model)
        features = extract(prompt, persona, task_type, self.feature_spec, scorer)
        # A text model means text scores in the spec (checked in __post_init__): extract called the scorer.
        assert scorer.ngrams is not None
        return features, encode_buckets(scorer.ngrams, self.text_model.hashing)

    def q_values(self, features: FloatArray) -> FloatArray:
        """Q(s, a) for every model; ``features`` is one vector or a batch (rows)."""
        h = self._mlp(features.astype(np.float32, copy=False), self.encoder, last_activation=True)
        adv = self._mlp(h, self.advantage, last_activation=False)
        if self.value is None:
            return adv
        value = self._mlp(h, self.value, last_activation=False)
        q: FloatArray = value + adv - adv.mean(axis=-1, keepdims=True)
        return q

    def meta(self) -> dict[str, Any]:
        """The JSON metadata stored beside the arrays."""
        return {
            "format": 1,
            "version": self.version,
            "models": self.models,
            "feature_spec": self.feature_spec.to_dict(),
            "activation": self.activation,
            "cost_weight": self.cost_weight,
            "model_costs": self.model_costs,
            "info": self.info,
        }

    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz`` archive."""
        arrays: dict[str, npt.NDArray[Any]] = {"meta": np.array(json.dumps(self.meta()))}
        heads = {"encoder": self.encoder, "advantage": self.advantage, "value": self.value or []}
        for name, layers in heads.items():
            for i, (w, b) in enumerate(layers):
                arrays[f"{name}.{i}.w"] = w.astype(np.float32)
                arrays[f"{name}.{i}.b"] = b.astype(np.float32)
        if self.text_model is not None:
            arrays.update(self.text_model.to_arrays())
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        """Write the artifact to ``path``."""
        path.write_bytes(self.to_bytes())


@dataclass
class _RecordingScorer:
    """The text model as ``extract`` calls it, keeping the buckets it hashed the prompt into for the log."""

    model: TextModel
    ngrams: IntArray | None = None

    def scores(self, normalised: str, task_type: str) -> FloatArray:
        """The text model's scores of the prompt; its buckets are kept in ``ngrams``."""
        self.ngrams = self.model.hashing.buckets_of(normalised)
        return self.model.scores_of(self.ngrams, task_type)


def _check_layers(name: str, layers: Layers, inputs: int, source: str) -> int:
    """Check that ``layers`` chain from ``inputs`` values; return how many values they give."""
    for i, (w, b) in enumerate(layers):
        if w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[1]:
            raise PolicyFormatError(
                f"{name}.{i} has weights of shape {w.shape} and bias of shape {b.shape}:"
                " expected (inputs, outputs) and (outputs,)"
            )
        if w.shape[0] != inputs:
            raise PolicyFormatError(f"{name}.{i} takes {w.shape[0]} inputs, {source} gives {inputs}")
        inputs, source = w.shape[1], f"{name}.{i}"
    return inputs


def _layers(archive: Any, name: str) -> Layers:
    layers: Layers = []
    while f"{name}.{len(layers)}.w" in archive.files:
        i = len(layers)
        layers.append(
            (archive[f"{name}.{i}.w"].astype(np.float32), archive[f"{name}.{i}.b"].astype(np.float32))
        )
    return layers


_REQUIRED = object()


def _typed(meta: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    value = meta[key] if default is _REQUIRED else meta.get(key, default)
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise PolicyFormatError(f"meta {key!r} must be {names}, not {type(value).__name__}")
    return value


def _meta(archive: Any) -> dict[str, Any]:
    meta = json.loads(str(archive["meta"]))
    if not isinstance(meta, dict):
        raise PolicyFormatError(f"meta must be a JSON object, not {type(meta).__name__}")
    models = _typed(meta, "models", list)
    if not all(isinstance(m, str) for m in models):
        raise PolicyFormatError("meta 'models' must be a list of model names")
    costs = _typed(meta, "model_costs", list, [])
    if not all(isinstance(c, (int, float)) for c in costs):
        raise PolicyFormatError("meta 'model_costs' must be a list of numbers")
    _typed(meta, "version", str)
    _typed(meta, "feature_spec", dict)
    _typed(meta, "activation", str, "relu")
    _typed(meta, "cost_weight", (int, float), 0.0)
    _typed(meta, "info", dict, {})
    return meta


# What a truncated or corrupt archive, or arrays and metadata of the wrong kind, raise while loading.
_LOAD_ERRORS = (KeyError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def policy_from_bytes(data: bytes) -> Policy:
    """Load an artifact produced by :meth:`Policy.to_bytes`, checked by one forward pass; never unpickles.

    Raises :class:`PolicyFormatError`, and nothing else, for any artifact that cannot be served."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = _meta(archive)
            value = _layers(archive, "value")
            policy = Policy(
                version=meta["version"],
                models=list(meta["models"]),
                feature_spec=FeatureSpec.from_dict(meta["feature_spec"]),
                encoder=_layers(archive, "encoder"),
                advantage=_layers(archive, "advantage"),
                value=value or None,
                activation=meta.get("activation", "relu"),
                cost_weight=float(meta.get("cost_weight", 0.0)),
                model_costs=[float(c) for c in meta.get("model_costs", [])],
                info=dict(meta.get("info", {})),
                text_model=TextModel.from_arrays(archive),
            )
    except PolicyFormatError:
        raise
    except _LOAD_ERRORS as exc:
        raise PolicyFormatError(f"not a policy artifact ({type(exc).__name__}: {exc})") from exc
    policy.check()
    return policy


def load_policy(path: Path) -> Policy:
    """Read a policy artifact from a file."""
    return policy_from_bytes(path.read_bytes())

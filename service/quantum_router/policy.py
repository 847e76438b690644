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
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from quantum_router.features import FeatureSpec, FloatArray, extract
from quantum_router.text_model import TextModel

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
        if not self.advantage:
            raise PolicyFormatError("the advantage head needs at least one layer")
        out = self.advantage[-1][0].shape[1]
        if out != len(self.models):
            raise PolicyFormatError(f"network has {out} outputs for {len(self.models)} models")
        first = (self.encoder or self.advantage)[0][0].shape[0]
        if first != self.feature_spec.dim:
            raise PolicyFormatError(
                f"network takes {first} inputs, feature spec gives {self.feature_spec.dim}"
            )
        if self.model_costs and len(self.model_costs) != len(self.models):
            raise PolicyFormatError("model_costs must have one entry per model")
        text_outputs = self.text_model.outputs if self.text_model is not None else 0
        if text_outputs != self.feature_spec.text_scores:
            raise PolicyFormatError(
                f"feature spec expects {self.feature_spec.text_scores} text scores,"
                f" the text model gives {text_outputs}"
            )
        self._act = _ACTIVATIONS[self.activation]

    def _mlp(self, x: FloatArray, layers: Layers, last_activation: bool) -> FloatArray:
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if last_activation or i < len(layers) - 1:
                x = self._act(x)
        return x

    def features(self, prompt: str, persona: str, task_type: str) -> FloatArray:
        """The feature vector this policy reads for a request."""
        return extract(prompt, persona, task_type, self.feature_spec, self.text_model)

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


def _layers(archive: Any, name: str) -> Layers:
    layers: Layers = []
    while f"{name}.{len(layers)}.w" in archive.files:
        i = len(layers)
        layers.append(
            (archive[f"{name}.{i}.w"].astype(np.float32), archive[f"{name}.{i}.b"].astype(np.float32))
        )
    return layers


def policy_from_bytes(data: bytes) -> Policy:
    """Load an artifact produced by :meth:`Policy.to_bytes`; never unpickles."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            value = _layers(archive, "value")
            return Policy(
                version=str(meta["version"]),
                models=list(meta["models"]),
                feature_spec=FeatureSpec.from_dict(meta["feature_spec"]),
                encoder=_layers(archive, "encoder"),
                advantage=_layers(archive, "advantage"),
                value=value or None,
                activation=str(meta.get("activation", "relu")),
                cost_weight=float(meta.get("cost_weight", 0.0)),
                model_costs=[float(c) for c in meta.get("model_costs", [])],
                info=dict(meta.get("info", {})),
                text_model=TextModel.from_arrays(archive),
            )
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
        raise PolicyFormatError(f"not a policy artifact: {exc}") from exc


def load_policy(path: Path) -> Policy:
    """Read a policy artifact from a file."""
    return policy_from_bytes(path.read_bytes())

"""Broken policy artifacts, as an interrupted upload or a faulty exporter would leave them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from quantum_router.policy import Policy


def _arrays(policy: Policy, version: str) -> dict[str, Any]:
    with np.load(io.BytesIO(policy.to_bytes()), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["meta"] = np.array(json.dumps({**policy.meta(), "version": version}))
    return arrays


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def truncated(policy: Policy, version: str) -> bytes:
    """The first half of a good artifact (``BadZipFile`` when opened)."""
    data = _npz(_arrays(policy, version))
    return data[: len(data) // 2]


def meta_of_the_wrong_type(policy: Policy, version: str) -> bytes:
    """Good arrays, with the metadata object wrapped in a JSON list."""
    arrays = _arrays(policy, version)
    arrays["meta"] = np.array(json.dumps([json.loads(str(arrays["meta"]))]))
    return _npz(arrays)


def wrong_layer_shapes(policy: Policy, version: str) -> bytes:
    """A network whose outer shapes fit the policy's features and models but whose layers do not chain:
    an 8-wide encoder feeding an advantage head that takes 4 inputs."""
    arrays = {k: v for k, v in _arrays(policy, version).items() if not k.startswith(("encoder.", "value."))}
    rng = np.random.default_rng(0)
    arrays["encoder.0.w"] = rng.normal(size=(policy.feature_spec.dim, 8)).astype(np.float32)
    arrays["encoder.0.b"] = np.zeros(8, np.float32)
    arrays["advantage.0.w"] = rng.normal(size=(4, len(policy.models))).astype(np.float32)
    arrays["advantage.0.b"] = np.zeros(len(policy.models), np.float32)
    for name in [k for k in arrays if k.startswith("advantage.") and not k.startswith("advantage.0.")]:
        del arrays[name]
    return _npz(arrays)


def with_meta(policy: Policy, **fields: Any) -> bytes:
    """A good artifact whose metadata has ``fields`` replaced."""
    arrays = _arrays(policy, policy.version)
    arrays["meta"] = np.array(json.dumps({**policy.meta(), **fields}))
    return _npz(arrays)


BadArtifact = Callable[[Policy, str], bytes]
BAD_ARTIFACTS: dict[str, BadArtifact] = {
    "truncated": truncated,
    "meta of the wrong type": meta_of_the_wrong_type,
    "wrong layer shapes": wrong_layer_shapes,
}

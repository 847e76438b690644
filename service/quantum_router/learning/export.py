"""Turn a trained RLlib DQN module into our numpy ``Policy`` artifact.

RLlib's default DQN module is ``encoder.net.mlp.*`` (Linear + activation, activation after every layer),
an advantage head ``af.net.mlp.*`` and, when dueling, a value head ``vf.net.mlp.*`` (Linear layers with the
activation between them, none after the last); Q = V + A - mean(A). That is exactly the layout of
:class:`quantum_router.policy.Policy`, so export is a rename plus a transpose (torch stores (out, in)).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from quantum_router.features import FeatureSpec
from quantum_router.policy import Layers, Policy
from quantum_router.text_model import TextModel

_KEY = re.compile(r"^(encoder|af|vf)\.net\.mlp\.(\d+)\.(weight|bias)$")
_HEADS = {"encoder": "encoder", "af": "advantage", "vf": "value"}


def layers_from_state_dict(state: Mapping[str, Any]) -> dict[str, Layers]:
    """Group a DQN module's state dict into ``encoder``/``advantage``/``value`` (in, out) float32 layers."""
    found: dict[str, dict[int, dict[str, np.ndarray[Any, Any]]]] = {}
    for key, tensor in state.items():
        match = _KEY.match(key)
        if match is None:
            continue  # e.g. log_std_clip_param_const: a constant RLlib keeps on every head, unused by DQN
        head, index, kind = match.group(1), int(match.group(2)), match.group(3)
        array = tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        found.setdefault(head, {}).setdefault(index, {})[kind] = array.astype(np.float32)
    out: dict[str, Layers] = {}
    for head, name in _HEADS.items():
        layers = found.get(head, {})
        # Sequential indices skip the activation modules (0, 2, 4, ...), so order by index, not position.
        out[name] = [(layers[i]["weight"].T.copy(), layers[i]["bias"].copy()) for i in sorted(layers)]
    return out


def policy_from_state_dict(
    state: Mapping[str, Any],
    *,
    version: str,
    models: list[str],
    feature_spec: FeatureSpec,
    activation: str,
    cost_weight: float,
    model_costs: list[float],
    info: dict[str, Any],
    text_model: TextModel | None = None,
) -> Policy:
    """Build a :class:`Policy` from a DQN module's ``state_dict()``; raises if it is not a DQN MLP."""
    layers = layers_from_state_dict(state)
    if not layers["advantage"]:
        raise ValueError("state dict has no advantage head (af.net.mlp.*): not an RLlib DQN module")
    return Policy(
        version=version,
        models=list(models),
        feature_spec=feature_spec,
        encoder=layers["encoder"],
        advantage=layers["advantage"],
        value=layers["value"] or None,
        activation=activation,
        cost_weight=cost_weight,
        model_costs=list(model_costs),
        info=info,
        text_model=text_model,
    )

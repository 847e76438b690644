import random
from pathlib import Path

import numpy as np
import pytest

from quantum_router.catalog import Catalog, load_catalog
from quantum_router.default_policy import prior_policy
from quantum_router.features import FeatureSpec, extract
from quantum_router.policy import Layers, Policy, PolicyFormatError, policy_from_bytes
from quantum_router.routing import decide
from quantum_router.settings import Settings
from tests.policy_artifacts import BAD_ARTIFACTS, BadArtifact, with_meta

SPEC = FeatureSpec(personas=("p",), task_types=("a", "b"), ngram_buckets=8)


def _dueling(seed: int = 0) -> Policy:
    rng = np.random.default_rng(seed)

    def layer(i: int, o: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(size=(i, o)).astype(np.float32), rng.normal(size=o).astype(np.float32)

    return Policy(
        version="t-1",
        models=["m1", "m2", "m3"],
        feature_spec=SPEC,
        encoder=[layer(SPEC.dim, 16), layer(16, 16)],
        advantage=[layer(16, 3)],
        value=[layer(16, 1)],
        model_costs=[0.1, 0.2, 0.3],
        cost_weight=1.0,
    )


def test_round_trip_gives_identical_q_values() -> None:
    policy = _dueling()
    loaded = policy_from_bytes(policy.to_bytes())
    x = np.random.default_rng(1).normal(size=(10, SPEC.dim)).astype(np.float32)
    assert np.array_equal(policy.q_values(x), loaded.q_values(x))
    assert loaded.meta() == policy.meta()


def test_dueling_q_is_value_plus_centred_advantage() -> None:
    policy = _dueling()
    x = np.ones(SPEC.dim, dtype=np.float32)
    h = np.maximum(
        np.maximum(x @ policy.encoder[0][0] + policy.encoder[0][1], 0) @ policy.encoder[1][0]
        + policy.encoder[1][1],
        0,
    )
    adv = h @ policy.advantage[0][0] + policy.advantage[0][1]
    val = h @ policy.value[0][0] + policy.value[0][1]  # type: ignore[index]
    assert np.allclose(policy.q_values(x), val + adv - adv.mean(), atol=1e-5)


def test_garbage_is_refused_without_unpickling() -> None:
    with pytest.raises(PolicyFormatError):
        policy_from_bytes(b"not an npz file")


def test_shape_mismatch_is_refused() -> None:
    w = np.zeros((SPEC.dim + 1, 2), dtype=np.float32)
    with pytest.raises(PolicyFormatError):
        Policy("v", ["a", "b"], SPEC, [], [(w, np.zeros(2, dtype=np.float32))])


@pytest.mark.parametrize("make", BAD_ARTIFACTS.values(), ids=BAD_ARTIFACTS.keys())
def test_a_broken_artifact_is_refused_with_a_format_error(make: BadArtifact) -> None:
    with pytest.raises(PolicyFormatError):
        policy_from_bytes(make(_dueling(), "broken-1"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("version", 3),
        ("models", [1, 2, 3]),
        ("feature_spec", ["p"]),
        ("model_costs", "cheap"),
        ("info", "none"),
        ("activation", None),
    ],
)
def test_metadata_of_the_wrong_type_is_refused(key: str, value: object) -> None:
    with pytest.raises(PolicyFormatError, match=key):
        policy_from_bytes(with_meta(_dueling(), **{key: value}))


def _layer(i: int, o: int) -> tuple[np.ndarray, np.ndarray]:
    return np.ones((i, o), np.float32), np.zeros(o, np.float32)


@pytest.mark.parametrize(
    ("encoder", "advantage", "value"),
    [
        ([_layer(SPEC.dim, 16), _layer(8, 16)], [_layer(16, 3)], None),  # encoder layers do not chain
        ([_layer(SPEC.dim, 16)], [_layer(8, 3)], None),  # advantage head reads the wrong width
        ([_layer(SPEC.dim, 16)], [_layer(16, 8), _layer(4, 3)], None),  # advantage layers do not chain
        ([_layer(SPEC.dim, 16)], [_layer(16, 3)], [_layer(8, 1)]),  # value head reads the wrong width
        ([_layer(SPEC.dim, 16)], [_layer(16, 3)], [_layer(16, 2)]),  # value head gives two values
        ([(np.ones((SPEC.dim, 16), np.float32), np.zeros(8, np.float32))], [_layer(16, 3)], None),  # bias
        ([(np.ones(SPEC.dim, np.float32), np.zeros(1, np.float32))], [_layer(1, 3)], None),  # 1-D weights
    ],
)
def test_inner_layer_shapes_are_checked(encoder: Layers, advantage: Layers, value: Layers | None) -> None:
    with pytest.raises(PolicyFormatError):
        Policy("v", ["m1", "m2", "m3"], SPEC, encoder, advantage, value)


def test_a_policy_with_non_finite_weights_is_refused() -> None:
    policy = _dueling()
    policy.advantage[0][1][0] = np.nan
    with pytest.raises(PolicyFormatError, match="finite"):
        policy_from_bytes(policy.to_bytes())


def test_shipped_default_policy_is_the_catalog_prior() -> None:
    settings = Settings()
    shipped = policy_from_bytes(settings.policy_file.read_bytes())
    prior = prior_policy(load_catalog(settings.catalog_file))
    assert shipped.meta() == prior.meta()
    x = extract("design a distributed cache", "architect", "architecture", prior.feature_spec)
    assert np.array_equal(shipped.q_values(x), prior.q_values(x))


def test_prior_prefers_strong_models_for_architecture_and_cheaper_ones_for_chat() -> None:
    catalog = load_catalog(Path(Settings().catalog_file))
    policy = prior_policy(catalog)
    rng = random.Random(0)
    pick = {
        task: decide(
            policy, extract("hello", "developer", task, policy.feature_spec), set(policy.models), 0.0, rng
        )
        for task in ("architecture", "chat")
    }
    costs = {m.name: m.cost_per_1k_tokens for m in catalog.models}
    assert pick["architecture"].chosen == "sim-strong"
    assert costs[pick["chat"].chosen] < costs["sim-strong"]


def test_prior_routes_by_the_declared_quality_not_the_simulated_truth() -> None:
    # The catalog claims A is better at code generation; the simulation (the truth) says B.
    simulation = {"latency_ms": {"median": 10}, "quality": {"default": 0.5, "code_generation": 0.8}}
    catalog = Catalog.model_validate(
        {
            "personas": ["developer"],
            "task_types": ["code_generation", "chat"],
            "models": [
                {"name": "a", "provider": "simulated", "cost_per_1k_tokens": 0.001,
                 "quality": {"default": 0.6, "code_generation": 0.9},
                 "simulation": {"latency_ms": {"median": 10}, "quality": {"default": 0.5}}},
                {"name": "b", "provider": "simulated", "cost_per_1k_tokens": 0.001, "simulation": simulation},
                {"name": "gpt", "provider": "openai", "cost_per_1k_tokens": 0.001,
                 "base_url": "http://127.0.0.1:9", "quality": {"chat": 0.95}},
            ],
        }
    )  # fmt: skip
    assert catalog.model("a").declared_quality("code_generation") == 0.9
    assert catalog.model("a").declared_quality("chat") == 0.6  # its declared default
    assert catalog.model("b").declared_quality("code_generation") == 0.8  # nothing declared: the simulation's
    assert catalog.model("gpt").declared_quality("code_generation") is None  # unknown
    policy = prior_policy(catalog)
    rng = random.Random(0)

    def pick(task: str, allowed: set[str]) -> str:
        return decide(policy, extract("x", "developer", task, policy.feature_spec), allowed, 0.0, rng).chosen

    assert pick("code_generation", {"a", "b"}) == "a"  # declared 0.9 against 0.8; the truths say b
    assert pick("chat", {"a", "gpt"}) == "gpt"  # a real model's declared quality counts
    assert pick("code_generation", {"a", "gpt"}) == "a"  # 0.9 against the unknown 0.7

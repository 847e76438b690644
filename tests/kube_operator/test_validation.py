"""Spec checks the CRD schema cannot make: each refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from router_operator.validation import InvalidSpec, validate
from tests.kube_operator.conftest import sample


def errors(spec: dict[str, Any], name: str = "demo") -> str:
    with pytest.raises(InvalidSpec) as refused:
        validate(name, spec)
    return str(refused.value)


def test_both_samples_are_valid() -> None:
    assert validate("router", sample("minimal").get("spec") or {}).replicas == 2
    full = validate("router-full", sample("full")["spec"])
    assert full.database.managed_or_default.replicas == 2
    assert full.min_replicas == 3


def test_reserved_and_malformed_settings_are_refused() -> None:
    assert "spec.settings.QR_JWT_SECRET: set by the operator" in errors({"settings": {"QR_JWT_SECRET": "x"}})
    assert "spec.settings.QR_DATABASE_URL" in errors(
        {"settings": {"QR_DATABASE_URL": "postgresql://u:p@h/db"}}
    )
    assert "spec.settings.log_level: setting names look like QR_NAME" in errors(
        {"settings": {"log_level": "x"}}
    )


def test_inline_catalog_problems_name_the_model() -> None:
    model = {"name": "a", "provider": "simulated", "cost_per_1k_tokens": 0.1}
    assert "duplicate model names ['a']" in errors({"catalog": {"inline": {"models": [model, model]}}})
    leaky = {**model, "api_key": "sk-123"}
    message = errors({"catalog": {"inline": {"models": [leaky]}}})
    assert "['api_key'] not allowed" in message and "sk-123" not in message
    assert "needs at least one model" in errors({"catalog": {"inline": {"models": []}}})
    unknown = {"catalog": {"inline": {"task_types": ["chat"], "models": [model]}}}
    assert "spec.routing.complexTaskTypes" in errors(unknown)


def test_rules_the_cel_also_enforces() -> None:
    assert "must not exceed autoscaling.maxReplicas" in errors(
        {"replicas": 20, "autoscaling": {"maxReplicas": 5}}
    )
    assert "complexVariations must not exceed" in errors(
        {"routing": {"complexVariations": 5, "maxVariations": 3}}
    )
    both = {"managed": {}, "external": {"urlSecretRef": {"name": "a", "key": "b"}}}
    assert "mutually exclusive" in errors({"cache": both})
    assert "at least 1 while autoscaling" in errors({"replicas": 0})
    validate("demo", {"replicas": 0, "autoscaling": {"enabled": False}})


def test_unknown_fields_and_long_names_are_refused() -> None:
    assert "spec.replica" in errors({"replica": 3})
    assert "metadata.name: at most 40 characters" in errors({}, name="x" * 41)


def test_duplicate_provider_key_variables() -> None:
    key = {"env": "OPENAI_API_KEY", "secretKeyRef": {"name": "s", "key": "k"}}
    assert "each variable may appear once" in errors({"catalog": {"providerKeys": [key, key]}})

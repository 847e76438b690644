"""What the CRD schema cannot say: checks on a spec before anything is created."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import ValidationError

from router_operator.spec import RouterDeploymentSpec

MAX_NAME_LENGTH = 40  # children append up to 23 characters and names of some kinds stop at 63
SETTING_NAME = re.compile(r"^QR_[A-Z0-9_]+$")
# Set by the operator from the spec or from Secrets; a plain `settings` entry would leak or conflict.
RESERVED_SETTINGS = frozenset(
    {
        "QR_JWT_SECRET",
        "QR_ADMIN_PASSWORD",
        "QR_DATABASE_URL",
        "QR_DATABASE_REPLICA_URLS",
        "QR_REDIS_URL",
        "QR_HOST",
        "QR_PORT",
        "QR_CATALOG_FILE",
    }
)


class InvalidSpec(Exception):
    """The spec cannot be turned into a stack; `errors` say why, one sentence each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.reason = "InvalidSpec"


class MissingReference(InvalidSpec):
    """A Secret or ConfigMap the spec names does not exist (or lacks the key)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(errors)
        self.reason = "ReferenceNotFound"


def _pydantic_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        out.append(f"spec.{where}: {err['msg']}" if where else f"spec: {err['msg']}")
    return out


def _catalog_errors(inline: dict[str, Any], complex_task_types: list[str]) -> list[str]:
    models = inline.get("models")
    if not isinstance(models, list) or not models:
        return ["spec.catalog.inline.models: needs at least one model"]
    errors = []
    names = [m.get("name") for m in models if isinstance(m, dict)]
    if len(names) != len(models) or not all(isinstance(n, str) and n for n in names):
        errors.append("spec.catalog.inline.models: every model needs a name")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1 and isinstance(n, str))
    if duplicates:
        errors.append(f"spec.catalog.inline.models: duplicate model names {duplicates}")
    for model in models:
        if isinstance(model, dict):
            leaked = sorted(k for k in model if "key" in k.lower() and k != "api_key_env")
            if leaked:
                errors.append(
                    f"spec.catalog.inline.models[{model.get('name')}]: {leaked} not allowed; "
                    "put API keys in a Secret named by spec.catalog.providerKeys and refer to its "
                    "variable in api_key_env"
                )
    task_types = inline.get("task_types")
    if isinstance(task_types, list):
        unknown = sorted(set(complex_task_types) - set(task_types))
        if unknown:
            errors.append(f"spec.routing.complexTaskTypes: {unknown} are not task types of the catalog")
    return errors


def validate(name: str, raw_spec: dict[str, Any]) -> RouterDeploymentSpec:
    """The typed spec, or InvalidSpec listing every problem found."""
    errors: list[str] = []
    if len(name) > MAX_NAME_LENGTH:
        errors.append(f"metadata.name: at most {MAX_NAME_LENGTH} characters (children add suffixes)")
    try:
        spec = RouterDeploymentSpec.model_validate(raw_spec)
    except ValidationError as exc:
        raise InvalidSpec(errors + _pydantic_errors(exc)) from None
    for key in spec.settings:
        if not SETTING_NAME.match(key):
            errors.append(f"spec.settings.{key}: setting names look like QR_NAME")
        elif key in RESERVED_SETTINGS:
            errors.append(f"spec.settings.{key}: set by the operator (secrets come from Secret references)")
    envs = [k.env for k in spec.catalog.provider_keys]
    if len(set(envs)) != len(envs):
        errors.append("spec.catalog.providerKeys: each variable may appear once")
    if spec.catalog.inline is not None:
        errors += _catalog_errors(spec.catalog.inline, spec.routing.complex_task_types)
    if errors:
        raise InvalidSpec(errors)
    return spec

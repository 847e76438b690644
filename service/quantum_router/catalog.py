"""The model catalog: which models exist, what they cost, and how simulated ones behave."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quantum_router.settings import load_yaml


class LatencySpec(BaseModel):
    """Log-normal latency: ``median`` milliseconds and the log-space ``sigma``."""

    model_config = ConfigDict(extra="forbid")
    median: float = Field(gt=0)
    sigma: float = Field(0.3, ge=0)


class SimulationSpec(BaseModel):
    """How a simulated model behaves."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: LatencySpec
    failure_rate: float = Field(0.0, ge=0, le=1)
    output_tokens: int = Field(200, ge=1)
    quality: dict[str, float] = Field(default_factory=lambda: {"default": 0.5})

    def quality_for(self, task_type: str) -> float:
        """P[correct] of this model on a task type."""
        return self.quality.get(task_type, self.quality.get("default", 0.5))


class ReplaySpec(BaseModel):
    """Where a replayed model's recorded outcomes are: a dataset and the column of this model in it."""

    model_config = ConfigDict(extra="forbid")
    # A CSV or folder of CSVs as `quantum-router train` reads them (relative: to the working directory).
    dataset: Path
    # The dataset's outcome column of this model (default: the catalog name).
    column: str | None = None
    output_tokens: int = Field(1, ge=1)


class ModelSpec(BaseModel):
    """One routable model."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    provider: Literal["simulated", "openai", "replay"]
    cost_per_1k_tokens: float = Field(ge=0)
    suits: list[str] = Field(default_factory=list)
    # The catalog's claim about the model's quality per task type (``default`` for the others), which the
    # prior routes by. For a simulated model it may differ from ``simulation.quality``, the simulated truth:
    # that is how a wrong catalog is simulated, and what training on observed outcomes has to correct.
    quality: dict[str, float] | None = None
    simulation: SimulationSpec | None = None
    replay: ReplaySpec | None = None
    base_url: str | None = None
    upstream_model: str | None = None
    api_key_env: str | None = None

    @model_validator(mode="after")
    def _provider_fields(self) -> ModelSpec:
        if self.provider == "simulated" and self.simulation is None:
            raise ValueError(f"simulated model {self.name} needs a 'simulation' section")
        if self.provider == "openai" and not self.base_url:
            raise ValueError(f"openai model {self.name} needs 'base_url'")
        if self.provider == "replay" and self.replay is None:
            raise ValueError(f"replay model {self.name} needs a 'replay' section (dataset, column)")
        return self

    def declared_quality(self, task_type: str) -> float | None:
        """The quality the catalog declares for a task type: ``quality`` (the task's, else its
        ``default``), else the simulation's, else None (unknown)."""
        if self.quality is not None:
            declared = self.quality.get(task_type, self.quality.get("default"))
            if declared is not None:
                return declared
        return self.simulation.quality_for(task_type) if self.simulation else None


class Catalog(BaseModel):
    """Models, personas and task types the router knows."""

    model_config = ConfigDict(extra="forbid")
    personas: list[str] = Field(min_length=1)
    task_types: list[str] = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("model names must be unique")
        return self

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; KeyError when unknown."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def model_names(self) -> list[str]:
        """Names in catalog order."""
        return [m.name for m in self.models]


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog YAML file."""
    return Catalog.model_validate(load_yaml(path))

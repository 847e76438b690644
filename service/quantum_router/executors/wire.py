"""JSON forms of jobs, plans and outcomes, for executors that run variations in another process."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from quantum_router.executors.base import Job, VariationOutcome
from quantum_router.providers.base import Completion
from quantum_router.variations import VariationPlan


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as JSON-ready data."""
    data = asdict(job)
    return {**data, "fallbacks": list(job.fallbacks), "messages": list(data["messages"])}


def job_from_dict(data: dict[str, Any]) -> Job:
    """Inverse of :func:`job_to_dict`."""
    return Job(
        **{**data, "fallbacks": tuple(data.get("fallbacks", ())), "messages": tuple(data.get("messages", ()))}
    )


def plan_from_dict(data: dict[str, Any]) -> VariationPlan:
    """A plan from its ``asdict`` form."""
    return VariationPlan(**data)


def outcome_to_dict(outcome: VariationOutcome) -> dict[str, Any]:
    """An outcome as JSON-ready data."""
    return asdict(outcome)


def outcome_from_dict(data: dict[str, Any]) -> VariationOutcome:
    """Inverse of :func:`outcome_to_dict`."""
    completion = data.get("completion")
    return VariationOutcome(
        plan=plan_from_dict(data["plan"]),
        model=data["model"],
        completion=Completion(**completion) if completion else None,
        error=data.get("error"),
        timed_out=bool(data.get("timed_out", False)),
        latency_ms=float(data.get("latency_ms", 0.0)),
        tried=list(data.get("tried", [])),
    )

"""Variations run on a Ray cluster: the service posts them to a Ray Serve application over HTTP.

The service process never imports Ray (a local Ray instance alone costs over 400 MB); it only speaks HTTP
to the Serve application deployed by ``quantum-router ray-serve`` (see ``ray_serve_app.py``).
"""

from __future__ import annotations

import httpx

from quantum_router.executors.base import Job, VariationOutcome
from quantum_router.executors.wire import job_to_dict, outcome_from_dict
from quantum_router.providers.base import ProviderError
from quantum_router.variations import VariationPlan

# Time allowed on top of the job's own deadline for the HTTP round trip and Serve's queueing.
_TRANSPORT_SLACK_SECONDS = 2.0


class RayServeExecutor:
    """Posts a request's plans to the Serve application and reads back one outcome per plan."""

    name = "ray"

    def __init__(self, base_url: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def run(self, job: Job, plans: list[VariationPlan]) -> list[VariationOutcome]:
        """Run the plans on the cluster; an unreachable cluster counts as every variation failing."""
        body = {"job": job_to_dict(job), "plans": [plan.__dict__ for plan in plans]}
        try:
            response = await self._client.post(
                "/variations", json=body, timeout=job.timeout_seconds + _TRANSPORT_SLACK_SECONDS
            )
            response.raise_for_status()
            return [outcome_from_dict(item) for item in response.json()["outcomes"]]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            error = ProviderError(f"ray executor unavailable: {type(exc).__name__}", retryable=True)
            timed_out = isinstance(exc, httpx.TimeoutException)
            return [
                VariationOutcome(plan, plan.model, error=str(error), timed_out=timed_out, tried=[plan.model])
                for plan in plans
            ]

    async def close(self) -> None:
        """Close the HTTP pool."""
        await self._client.aclose()

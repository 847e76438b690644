"""The Ray Serve application that runs variations on a Ray cluster (imported only inside Ray).

An ingress deployment takes one request's plans over HTTP and fans them out, one call per variation, to a
pool of ``VariationWorker`` replicas; each worker runs the variation with the same provider code as the
in-process executor. Deploy it with ``quantum-router ray-serve`` (``--address`` joins an existing cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from quantum_router.catalog import load_catalog
from quantum_router.executors.asyncio_executor import Fallbacks, run_variation
from quantum_router.executors.base import VariationOutcome
from quantum_router.executors.wire import job_from_dict, outcome_to_dict, plan_from_dict
from quantum_router.providers.registry import ProviderRegistry
from quantum_router.settings import Settings


class VariationWorker:
    """Runs single variations; many run concurrently per replica (they wait on I/O)."""

    def __init__(self) -> None:
        settings = Settings()
        self._providers = ProviderRegistry(load_catalog(settings.catalog_file), settings)

    async def run(
        self, job_data: dict[str, Any], plan_data: dict[str, Any], taken: list[str]
    ) -> dict[str, Any]:
        job = job_from_dict(job_data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.timeout_seconds
        fallbacks = Fallbacks(job.fallbacks, set(taken))
        outcome = await run_variation(self._providers, job, plan_from_dict(plan_data), fallbacks, deadline)
        return outcome_to_dict(outcome)


class Ingress:
    """HTTP entry: POST /variations with {job, plans} -> {outcomes} in plan order."""

    def __init__(self, worker: Any) -> None:
        self._worker = worker

    async def __call__(self, request: Any) -> dict[str, Any]:
        body = await request.json()
        job, plans = body["job"], body["plans"]
        taken = [p["model"] for p in plans]
        started = time.perf_counter()
        calls = [self._worker.run.remote(job, plan, taken) for plan in plans]
        try:
            async with asyncio.timeout(float(job["timeout_seconds"])):
                outcomes = list(await asyncio.gather(*calls))
        except TimeoutError:
            for call in calls:
                call.cancel()
            elapsed = (time.perf_counter() - started) * 1000
            outcomes = [
                outcome_to_dict(VariationOutcome.cancelled(plan_from_dict(p), elapsed)) for p in plans
            ]
        return {"outcomes": outcomes}


def build_app(workers: int) -> Any:
    """The bound Serve application."""
    from ray import serve

    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": 1000}
    worker = serve.deployment(num_replicas=workers, **options)(VariationWorker)
    ingress = serve.deployment(**options)(Ingress)
    return ingress.bind(worker.bind())


def main(argv: list[str] | None = None) -> int:
    """Start (or join) Ray, deploy the application and serve until interrupted."""
    import ray
    from ray import serve

    parser = argparse.ArgumentParser(prog="quantum-router ray-serve", description=__doc__)
    parser.add_argument(
        "--address", default=None, help="an existing Ray cluster (default: start a local one)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2, help="VariationWorker replicas")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray instance")
    args = parser.parse_args(argv)
    ray.init(address=args.address, num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build_app(args.workers), name="quantum-router-variations", route_prefix="/variations")
    print(f"variations served on http://{args.host}:{args.port}/variations", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()  # type: ignore[no-untyped-call]
    return 0

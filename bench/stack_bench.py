"""The full stack under load: cache-hit latency on Redis Cluster against the in-process cache (side by side,
same run), then a bounded concurrent load in the design's mix on Redis Cluster + PostgreSQL with two
replicas, with the pool efficiency and cache hit ratio the service reports for that load.

Run with ``make bench-stack``; it starts and stops its own servers on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.integration.servers import read_env_file

from bench.service_bench import PASSWORD, free_port, percentiles, process, service_env

ROOT = Path(__file__).resolve().parent.parent
SERVE = [sys.executable, "-m", "quantum_router.cli", "serve"]


def metric(text: str, name: str) -> list[tuple[str, float]]:
    return [
        (line.split(" ")[0], float(line.split(" ")[-1]))
        for line in text.splitlines()
        if line.startswith(name)
    ]


async def cache_hits(url: str, n: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        token = (await client.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD})).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        body = {
            "prompt": "Write a function that reverses a list",
            "persona": "developer",
            "task_type": "code_generation",
        }
        await client.post("/v1/execute", json=body, headers=auth)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            response = await client.post("/v1/execute", json=body, headers=auth)
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.json()["cache"] == "hit"
        return samples


async def load(
    url: str, users: int, requests_per_user: int, think: tuple[float, float], prompts: int
) -> dict[str, list[float]]:
    """Each user: 50 % simple code generation, 30 % complex analysis, 20 % capabilities, then a pause."""
    results: dict[str, list[float]] = {"simple": [], "complex": [], "capabilities": [], "errors": []}

    async def user(i: int) -> None:
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            token = (
                await client.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD})
            ).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            for _ in range(requests_per_user):
                roll = rng.random()
                t0 = time.perf_counter()
                if roll < 0.5:
                    kind = "simple"
                    body = {
                        "prompt": f"Write helper number {rng.randrange(prompts)}",
                        "persona": "developer",
                        "task_type": "code_generation",
                    }
                    response = await client.post("/v1/execute", json=body, headers=auth)
                elif roll < 0.8:
                    kind = "complex"
                    body = {
                        "prompt": f"Analyse module {rng.randrange(prompts)}",
                        "persona": "architect",
                        "task_type": "code_analysis",
                    }
                    response = await client.post("/v1/execute", json=body, headers=auth)
                else:
                    kind = "capabilities"
                    response = await client.get("/v1/capabilities")
                results[kind].append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    results["errors"].append(response.status_code)
                await asyncio.sleep(rng.uniform(*think))

    await asyncio.gather(*(user(i) for i in range(users)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests-per-user", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=20, help="distinct prompts per task type")
    parser.add_argument("--time-scale", type=float, default=0.1, help="QR_SIMULATION_TIME_SCALE for the load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qr-stack-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        tmp.chmod(0o755)
        redis_dir, pg_dir = tmp / "redis", tmp / "pg"
        # The scripts print the URLs (with the stack's throw-away passwords); keep them out of the report.
        quiet = {"check": True, "stdout": subprocess.DEVNULL}
        subprocess.run([ROOT / "scripts/redis-cluster.sh", "--dir", redis_dir, "start"], **quiet)
        subprocess.run([ROOT / "scripts/postgres-replicas.sh", "--dir", pg_dir, "start"], **quiet)
        try:
            stack = {
                **read_env_file(redis_dir / "env"),
                **read_env_file(pg_dir / "env"),
                "QR_SIMULATION_TIME_SCALE": str(args.time_scale),
            }
            embedded_port, stack_port = free_port(), free_port()
            embedded = service_env(embedded_port, tmp / "embedded.db", {})
            on_stack = service_env(stack_port, tmp / "unused.db", stack)
            with (
                process(SERVE, embedded, f"http://127.0.0.1:{embedded_port}/v1/health"),
                process(SERVE, on_stack, f"http://127.0.0.1:{stack_port}/v1/health"),
            ):
                memory_hits = asyncio.run(cache_hits(f"http://127.0.0.1:{embedded_port}", args.hits))
                redis_hits = asyncio.run(cache_hits(f"http://127.0.0.1:{stack_port}", args.hits))
                started = time.perf_counter()
                results = asyncio.run(
                    load(
                        f"http://127.0.0.1:{stack_port}",
                        args.users,
                        args.requests_per_user,
                        (1.0, 3.0),
                        args.prompts,
                    )
                )
                elapsed = time.perf_counter() - started
                text = httpx.get(f"http://127.0.0.1:{stack_port}/metrics").text
        finally:
            subprocess.run([ROOT / "scripts/redis-cluster.sh", "--dir", redis_dir, "destroy"], check=False)
            subprocess.run([ROOT / "scripts/postgres-replicas.sh", "--dir", pg_dir, "destroy"], check=False)
    print("| what | n | median ms | p99 ms |\n| --- | --- | --- | --- |")
    rows = {
        "cache hit, in-process cache": percentiles(memory_hits),
        "cache hit, Redis Cluster + PostgreSQL": percentiles(redis_hits),
    }
    rows.update({f"load: {k}": percentiles(v) for k, v in results.items() if k != "errors" and v})
    for name, r in rows.items():
        print(f"| {name} | {r['n']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} |")
    total = sum(len(v) for k, v in results.items() if k != "errors")
    print(
        f"\nload: {args.users} users x {args.requests_per_user} requests in {elapsed:.1f} s, "
        f"{len(results['errors'])} errors, simulated latency x{args.time_scale}"
    )
    print(
        f"ratio Redis/in-process cache-hit median: "
        f"{statistics.median(redis_hits) / statistics.median(memory_hits):.2f}; requests: {total}"
    )
    for name in ("qr_db_pool_efficiency", "qr_cache_hit_ratio"):
        for label, value in metric(text, name):
            print(f"{label} = {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

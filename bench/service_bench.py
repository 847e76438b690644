"""Latency of every endpoint on the embedded defaults, the routing decision alone, the router's overhead
over an OpenAI-compatible upstream, and the service's resident memory after 10,000 requests.

Run with ``make bench`` (or ``.venv/bin/python -m bench.service_bench``). It starts its own service and stub
processes on free loopback ports and stops them at the end. Results are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready_url: str, timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(ready_url, timeout)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def _stub_upstream() -> Iterator[int]:
    """The instant OpenAI-compatible stub (tests/openai_stub.py) in a process of its own; yields its port."""
    port = free_port()
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from tests.openai_stub import StubServer; "
        f"StubServer(port={port}).start(); time.sleep(10**6)"
    )
    with process([sys.executable, "-c", code], {}, f"http://127.0.0.1:{port}/"):
        yield port


def _stub_catalog(
    path: Path,
    stub_port: int,
    task_types: tuple[str, ...] = ("code_generation",),
    personas: tuple[str, ...] = ("developer",),
    models: tuple[tuple[str, str, float], ...] = (("upstream", "fast", 0.001),),
) -> Path:
    """Write a catalog whose models (name, upstream model, cost per 1k tokens) all call the stub."""
    catalog = {
        "personas": list(personas),
        "task_types": list(task_types),
        "models": [
            {
                "name": name,
                "provider": "openai",
                "cost_per_1k_tokens": cost,
                "base_url": f"http://127.0.0.1:{stub_port}/v1",
                "upstream_model": upstream,
            }
            for name, upstream, cost in models
        ],
    }
    path.write_text(yaml.safe_dump(catalog))
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(samples),
        "median_ms": statistics.median(ordered),
        "p90_ms": rank(0.9),
        "p99_ms": rank(0.99),
    }


def timed(n: int, call: Callable[[], httpx.Response], expect: int = 200) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - t0) * 1000)
        if response.status_code != expect:
            raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")
    return samples


def decision_alone(n: int) -> list[float]:
    """Feature extraction plus policy scoring, in-process, on prompts of mixed length."""
    from quantum_router.catalog import load_catalog
    from quantum_router.features import extract
    from quantum_router.policy import load_policy
    from quantum_router.routing import decide
    from quantum_router.settings import Settings

    settings = Settings()
    catalog = load_catalog(settings.catalog_file)
    policy = load_policy(settings.policy_file)
    rng = random.Random(0)
    words = ["design", "review", "the", "cache", "layer", "for", "race", "conditions", "and", "tests"]
    prompts = [" ".join(rng.choices(words, k=rng.choice([10, 100, 1000, 5000]))) for _ in range(64)]
    allowed = set(catalog.model_names)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        x = extract(prompts[i % 64], "developer", "code_generation", policy.feature_spec)
        decide(policy, x, allowed, 0.05, rng)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def service_env(port: int, db: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        "QR_PORT": str(port),
        "QR_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "QR_ADMIN_PASSWORD": PASSWORD,
        "QR_JWT_SECRET": "b" * 48,
        "QR_RATE_LIMIT_PER_MINUTE": "10000000",
        "QR_RATE_LIMIT_BURST": "1000000",
        # The benchmark logs in many times from one address: it measures login, not its throttle.
        "QR_LOGIN_RATE_LIMIT_PER_MINUTE": "10000000",
        "QR_LOGIN_RATE_LIMIT_BURST": "1000000",
        "QR_LOG_LEVEL": "WARNING",
        **extra,
    }


@dataclass(frozen=True)
class RouterOnStub:
    """The service and the stub it fronts, each in a process of its own on a free loopback port."""

    port: int
    stub_port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stub_url(self) -> str:
        return f"http://127.0.0.1:{self.stub_port}"


@contextmanager
def router_on_stub(
    tmp: Path,
    task_types: tuple[str, ...] = ("code_generation",),
    personas: tuple[str, ...] = ("developer",),
    models: tuple[tuple[str, str, float], ...] = (("upstream", "fast", 0.001),),
    extra: dict[str, str] | None = None,
) -> Iterator[RouterOnStub]:
    """``quantum-router serve`` (SQLite in ``tmp``, ``extra`` settings) whose catalog's models, (name,
    upstream model, cost per 1k tokens), all call the instant OpenAI-compatible stub."""
    port = free_port()
    with _stub_upstream() as stub_port:
        catalog = _stub_catalog(tmp / "catalog.yaml", stub_port, task_types, personas, models)
        env = service_env(port, tmp / "router.db", {**(extra or {}), "QR_CATALOG_FILE": str(catalog)})
        serve = [sys.executable, "-m", "quantum_router.cli", "serve"]
        with process(serve, env, f"http://127.0.0.1:{port}/v1/health") as proc:
            yield RouterOnStub(port, stub_port, proc.pid)


def login(client: httpx.Client) -> dict[str, str]:
    token = client.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()[
        "access_token"
    ]
    return {"Authorization": f"Bearer {token}"}


def bench_embedded(tmp: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    port = free_port()
    serve = [sys.executable, "-m", "quantum_router.cli", "serve"]
    results: dict[str, dict[str, float]] = {}
    with (
        process(serve, service_env(port, tmp / "embedded.db", {}), f"http://127.0.0.1:{port}/v1/health"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
    ):
        auth = login(client)
        results["GET /v1/health"] = percentiles(timed(args.n, lambda: client.get("/v1/health")))
        results["GET /v1/capabilities"] = percentiles(timed(args.n, lambda: client.get("/v1/capabilities")))
        creds = {"username": "admin", "password": PASSWORD}
        results["POST /v1/auth/login"] = percentiles(
            timed(args.n_login, lambda: client.post("/v1/auth/login", json=creds))
        )
        counter = iter(range(10**9))

        def simple() -> httpx.Response:
            body = {
                "prompt": f"Write a function number {next(counter)}",
                "persona": "developer",
                "task_type": "code_generation",
            }
            return client.post("/v1/execute", json=body, headers=auth)

        def complex_() -> httpx.Response:
            body = {
                "prompt": f"Review module {next(counter)} for races",
                "persona": "architect",
                "task_type": "code_analysis",
            }
            return client.post("/v1/execute", json=body, headers=auth)

        results["POST /v1/execute simple (simulated fleet)"] = percentiles(timed(args.n_exec, simple))
        results["POST /v1/execute complex, 3 variations (simulated)"] = percentiles(
            timed(args.n_exec, complex_)
        )
        hit = {
            "prompt": "Write a function that reverses a list",
            "persona": "developer",
            "task_type": "code_generation",
        }
        client.post("/v1/execute", json=hit, headers=auth)
        results["POST /v1/execute cache hit"] = percentiles(
            timed(args.n, lambda: client.post("/v1/execute", json=hit, headers=auth))
        )
    return results


def bench_overhead(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], float, float]:
    """The same completions direct to the stub and through the router, alternating, in one run."""
    direct: list[float] = []
    routed: list[float] = []
    with (
        router_on_stub(tmp) as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
        httpx.Client(base_url=f"{service.stub_url}/v1", timeout=60) as upstream,
    ):
        auth = login(client)
        chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        for i in range(args.n_overhead):
            direct += timed(1, lambda: upstream.post("/chat/completions", json=chat))
            body = {
                "prompt": f"prompt {i}",
                "persona": "developer",
                "task_type": "code_generation",
                "options": {"bypass_cache": True},
            }
            routed += timed(1, lambda body=body: client.post("/v1/execute", json=body, headers=auth))
        # Memory after 10,000 requests in all: a mix of cache misses and hits.
        total = 2 * args.n_overhead
        while total < args.n_memory:
            body = {
                "prompt": f"prompt {total % 2000}",
                "persona": "developer",
                "task_type": "code_generation",
            }
            client.post("/v1/execute", json=body, headers=auth)
            total += 1
        memory = rss_mb(service.pid)
    stats = {"direct to stub": percentiles(direct), "through the router": percentiles(routed)}
    overhead = statistics.median(routed) - statistics.median(direct)
    return stats, overhead, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="requests per cheap endpoint")
    parser.add_argument("--n-login", type=int, default=30)
    parser.add_argument("--n-exec", type=int, default=30, help="requests per simulated execute case")
    parser.add_argument("--n-overhead", type=int, default=1000)
    parser.add_argument("--n-memory", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qr-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        results = {"routing decision alone (in-process)": percentiles(decision_alone(20_000))}
        results.update(bench_embedded(tmp, args))
        stats, overhead, memory = bench_overhead(tmp, args)
        results.update(stats)
    print("| what | n | median ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['n']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} |")
    print(f"\nrouter overhead (median through router - median direct): {overhead:.3f} ms")
    print(f"service RSS after {args.n_memory} requests: {memory:.1f} MB")
    if args.json:
        args.json.write_text(
            json.dumps({"latency": results, "overhead_ms": overhead, "rss_mb": memory}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

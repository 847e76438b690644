"""The router beside the LiteLLM proxy, both in front of the same instant OpenAI-compatible stub, measured
alternately in one run at concurrency 1 and 16: median and 99th percentile latency, requests per second,
overhead over calling the stub directly, and resident memory.

LiteLLM is installed by this script into a virtual environment of its own under
``$QR_CACHE/peers/litellm-<version>`` (pinned by ``--litellm-version``); it never becomes a dependency of
the project. Both proxies authenticate (our API key, LiteLLM's master key), use one worker process, and
call the upstream through ``/v1/chat/completions``; the router's cache is bypassed.

Run with ``.venv/bin/python -m bench.peer_overhead`` (``--json FILE`` also writes the results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml

from bench.service_bench import (
    free_port,
    login,
    percentiles,
    process,
    router_on_stub,
    rss_mb,
)

LITELLM_VERSION = "1.108.7"
QR_CACHE = Path(os.environ.get("QR_CACHE", Path.home() / ".cache" / "quantum-router"))
MESSAGES = [{"role": "user", "content": "Write a function that reverses a list"}]


def uv_binary() -> str:
    found = sorted(QR_CACHE.glob("uv-*/bin/uv"))
    if not found:
        raise SystemExit("uv not found under $QR_CACHE: run make venv first")
    return str(found[-1])


def ensure_litellm(version: str) -> Path:
    """The LiteLLM proxy's own virtual environment (created once per version)."""
    venv = QR_CACHE / "peers" / f"litellm-{version}"
    if not (venv / "bin" / "litellm").exists():
        uv = uv_binary()
        subprocess.run([uv, "venv", "-q", "-p", "python3.11", str(venv)], check=True)
        env = {**os.environ, "VIRTUAL_ENV": str(venv)}
        subprocess.run([uv, "pip", "install", "-q", f"litellm[proxy]=={version}"], check=True, env=env)
    return venv


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (LiteLLM may fork workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return sum(rss_mb(p) for p in pids)


@contextmanager
def litellm_proxy(venv: Path, stub_port: int, tmp: Path, key: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": "fast",
                "litellm_params": {
                    "model": "openai/fast",
                    "api_base": f"http://127.0.0.1:{stub_port}/v1",
                    "api_key": "sk-stub",
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
    }
    (tmp / "litellm.yaml").write_text(yaml.safe_dump(config))
    args = [str(venv / "bin" / "litellm"), "--config", str(tmp / "litellm.yaml"), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--num_workers", "1"]
    # A local cost map (no download at start) and a master key (it refuses to start open, as we do).
    env = {"LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    # LiteLLM imports for a long while (tens of seconds on a busy two-core machine).
    with process(args, env, f"http://127.0.0.1:{port}/health/liveliness", timeout=180) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


async def measure(
    url: str, body: dict[str, Any], headers: dict[str, str], n: int, concurrency: int
) -> tuple[list[float], float]:
    """``n`` POST /v1/chat/completions from ``concurrency`` workers: latencies (ms) and elapsed seconds.

    Each worker first opens its connection with one request that is neither counted nor timed: with 16
    workers, 16 simultaneous TCP set-ups are otherwise most of the 99th percentile of a short run."""
    latencies: list[float] = []
    remaining = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:

        async def call() -> None:
            async with session.post("/v1/chat/completions", json=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: {response.status}")

        async def worker() -> None:
            for _ in remaining:
                t0 = time.perf_counter()
                await call()
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(call() for _ in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def summarise(
    samples: dict[tuple[str, int], list[float]], seconds: dict[tuple[str, int], float]
) -> list[dict[str, Any]]:
    """One row per (target, concurrency): n, median, p99, requests per second and the median's overhead
    over "direct to the stub" at the same concurrency."""
    rows = []
    for (name, concurrency), lat in samples.items():
        stats = percentiles(lat)
        direct = statistics.median(samples[("direct to the stub", concurrency)])
        rows.append(
            {
                "target": name,
                "concurrency": concurrency,
                "n": len(lat),
                "median_ms": stats["median_ms"],
                "p99_ms": stats["p99_ms"],
                "rps": len(lat) / seconds[(name, concurrency)],
                "overhead_ms": stats["median_ms"] - direct,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="requests per target, concurrency and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--litellm-version", default=LITELLM_VERSION)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    venv = ensure_litellm(args.litellm_version)
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"LiteLLM {version} (venv {venv})", flush=True)
    master_key = "sk-" + secrets.token_hex(32)
    samples: dict[tuple[str, int], list[float]] = {}
    seconds: dict[tuple[str, int], float] = {}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="qr-peers-") as tmp_dir:
        tmp = Path(tmp_dir)
        with (
            router_on_stub(tmp, ("chat",)) as router,
            litellm_proxy(venv, router.stub_port, tmp, master_key) as (litellm_url, litellm_pid),
            httpx.Client(base_url=router.url, timeout=60) as client,
        ):
            router_auth = {**login(client), "x-quantum-router-bypass-cache": "true"}
            targets = {
                "direct to the stub": (router.stub_url, {"model": "fast"}, {}),
                "Quantum Router": (router.url, {"model": "router"}, router_auth),
                f"LiteLLM {version}": (
                    litellm_url,
                    {"model": "fast"},
                    {"Authorization": f"Bearer {master_key}"},
                ),
            }
            for concurrency in args.concurrency:
                for _ in range(args.rounds):
                    for name, (url, model, headers) in targets.items():
                        body = {**model, "messages": MESSAGES, "max_tokens": 16}
                        lat, elapsed = asyncio.run(measure(url, body, headers, args.n, concurrency))
                        samples.setdefault((name, concurrency), []).extend(lat)
                        seconds[(name, concurrency)] = seconds.get((name, concurrency), 0.0) + elapsed
            memory["Quantum Router"] = rss_mb(router.pid)
            memory[f"LiteLLM {version}"] = tree_rss_mb(litellm_pid)
    results = [{**row, "rss_mb": memory.get(row["target"])} for row in summarise(samples, seconds)]
    print("| target | concurrency | n | median ms | p99 ms | req/s | overhead ms (median) | RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        rss = f"{r['rss_mb']:.0f}" if r["rss_mb"] else ""
        print(
            f"| {r['target']} | {r['concurrency']} | {r['n']} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['rps']:.0f} | {r['overhead_ms']:.2f} | {rss} |"
        )
    for concurrency in args.concurrency:
        ours = next(r for r in results if r["target"] == "Quantum Router" and r["concurrency"] == concurrency)
        peer = next(
            r for r in results if r["target"].startswith("LiteLLM") and r["concurrency"] == concurrency
        )
        overhead_ratio = peer["overhead_ms"] / ours["overhead_ms"]
        print(
            f"\nconcurrency {concurrency}: LiteLLM's overhead is {overhead_ratio:.1f}x ours; "
            f"our throughput is {ours['rps'] / peer['rps']:.1f}x LiteLLM's"
        )
    if args.json:
        args.json.write_text(json.dumps({"litellm": version, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The asyncio executor against the Ray Serve executor, side by side in one run.

Two services with the same catalog (three models on an OpenAI-compatible stub) differ only in the executor;
requests with three variations alternate between them. Reported: latency of each, the difference, the
service processes' resident memory, and the memory of the Ray processes the Ray executor needs.

Run with ``.venv/bin/python -m bench.executor_bench``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.service_bench import ROOT, free_port, login, percentiles, process, rss_mb, service_env, timed

SERVE = [sys.executable, "-m", "quantum_router.cli", "serve"]


def session_rss_mb(session: int) -> float:
    """Sum of the resident memory of every process in one session (the Ray driver started its own)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:  # field 6 of stat: the session id
                total += rss_mb(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qr-exec-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        stub_port, ray_port, a_port, b_port = free_port(), free_port(), free_port(), free_port()
        base = f"http://127.0.0.1:{stub_port}/v1"
        catalog = {
            "personas": ["architect"],
            "task_types": ["code_analysis"],
            "models": [
                {
                    "name": f"m{i}",
                    "provider": "openai",
                    "cost_per_1k_tokens": 0.001 * (i + 1),
                    "base_url": base,
                    "upstream_model": f"delay-0.05-m{i}",
                }
                for i in range(3)
            ],
        }
        path = tmp / "catalog.yaml"
        path.write_text(yaml.safe_dump(catalog))
        stub_code = (
            f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from tests.openai_stub import StubServer; "
            f"StubServer(port={stub_port}).start(); time.sleep(10**6)"
        )
        common = {"QR_CATALOG_FILE": str(path)}
        ray_env = {**common, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        ray_args = [
            sys.executable,
            "-m",
            "quantum_router.cli",
            "ray-serve",
            "--port",
            str(ray_port),
            "--num-cpus",
            "2",
        ]
        with process([sys.executable, "-c", stub_code], {}, f"http://127.0.0.1:{stub_port}/"):
            ray = subprocess.Popen(
                ray_args,
                env={**os.environ, **ray_env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                assert ray.stdout is not None
                deadline = time.monotonic() + 300
                for line in ray.stdout:
                    if b"variations served" in line or time.monotonic() > deadline:
                        break
                ray_url = f"http://127.0.0.1:{ray_port}"
                env_a = service_env(a_port, tmp / "a.db", common)
                env_b = service_env(b_port, tmp / "b.db", {**common, "QR_RAY_SERVE_URL": ray_url})
                with (
                    process(SERVE, env_a, f"http://127.0.0.1:{a_port}/v1/health") as proc_a,
                    process(SERVE, env_b, f"http://127.0.0.1:{b_port}/v1/health") as proc_b,
                    httpx.Client(base_url=f"http://127.0.0.1:{a_port}", timeout=60) as a,
                    httpx.Client(base_url=f"http://127.0.0.1:{b_port}", timeout=60) as b,
                ):
                    auth_a, auth_b = login(a), login(b)
                    lat_a: list[float] = []
                    lat_b: list[float] = []
                    for i in range(args.n):
                        body = {
                            "prompt": f"analyse {i}",
                            "persona": "architect",
                            "task_type": "code_analysis",
                            "options": {"bypass_cache": True, "variations": 3},
                        }
                        lat_a += timed(1, lambda body=body: a.post("/v1/execute", json=body, headers=auth_a))
                        lat_b += timed(1, lambda body=body: b.post("/v1/execute", json=body, headers=auth_b))
                    mem_a, mem_b, mem_ray = rss_mb(proc_a.pid), rss_mb(proc_b.pid), session_rss_mb(ray.pid)
            finally:
                os.killpg(ray.pid, signal.SIGINT)
                try:
                    ray.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(ray.pid, signal.SIGKILL)
    print("| executor | n | median ms | p99 ms | service RSS MB |\n| --- | --- | --- | --- | --- |")
    for name, lat, mem in (("asyncio", lat_a, mem_a), ("ray (Serve over HTTP)", lat_b, mem_b)):
        r = percentiles(lat)
        print(f"| {name} | {r['n']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} | {mem:.1f} |")
    added = statistics.median(lat_b) - statistics.median(lat_a)
    print(f"\nadded latency of the Ray executor (median): {added:.3f} ms")
    print(f"Ray processes' RSS (head, raylet, Serve proxy, replicas): {mem_ray:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

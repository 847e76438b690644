"""The router's overhead on /v1/chat/completions against an instant OpenAI-compatible stub, non-streamed and
streamed (time to the first content chunk and to the end), beside the same calls made directly to the stub,
alternating request by request in one run.

Run with ``.venv/bin/python -m bench.chat_bench`` (``--n`` requests per case). It starts the stub and the
service on free loopback ports and stops them at the end; results are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.service_bench import (
    login,
    percentiles,
    router_on_stub,
)

MESSAGES = [{"role": "user", "content": "Write a function that reverses a list"}]


def plain(client: httpx.Client, path: str, body: dict[str, object], headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    response = client.post(path, json=body, headers=headers)
    elapsed = (time.perf_counter() - t0) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return elapsed


def streamed(
    client: httpx.Client, path: str, body: dict[str, object], headers: dict[str, str]
) -> tuple[float, float]:
    """(ms to the first chunk with content, ms to the end of the stream)."""
    t0 = time.perf_counter()
    first = None
    with client.stream("POST", path, json={**body, "stream": True}, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
        for line in response.iter_lines():
            if first is None and '"content":"' in line.replace(" ", "") and '"content":""' not in line:
                first = (time.perf_counter() - t0) * 1000
    total = (time.perf_counter() - t0) * 1000
    if first is None:
        raise RuntimeError(f"{path}: no content chunk")
    return first, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="requests per case")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with (
        tempfile.TemporaryDirectory(prefix="qr-chat-bench-") as tmp_dir,
        router_on_stub(Path(tmp_dir), ("chat",)) as service,
        httpx.Client(base_url=service.url, timeout=60) as router,
        httpx.Client(base_url=service.stub_url, timeout=60) as stub,
    ):
        auth = {**login(router), "x-quantum-router-bypass-cache": "true"}
        direct_body = {"model": "fast", "messages": MESSAGES, "max_tokens": 16}
        routed_body = {"model": "router", "messages": MESSAGES, "max_tokens": 16}
        for _ in range(args.n):
            add("non-streamed, direct to the stub", plain(stub, "/v1/chat/completions", direct_body, {}))
            add(
                "non-streamed, through the router",
                plain(router, "/v1/chat/completions", routed_body, auth),
            )
            first, total = streamed(stub, "/v1/chat/completions", direct_body, {})
            add("streamed first chunk, direct", first)
            add("streamed to the end, direct", total)
            first, total = streamed(router, "/v1/chat/completions", routed_body, auth)
            add("streamed first chunk, through the router", first)
            add("streamed to the end, through the router", total)
    print("| what | n | median ms | p99 ms |\n| --- | --- | --- | --- |")
    for name, values in samples.items():
        r = percentiles(values)
        print(f"| {name} | {r['n']:.0f} | {r['median_ms']:.3f} | {r['p99_ms']:.3f} |")
    for label, direct, routed in (
        ("non-streamed", "non-streamed, direct to the stub", "non-streamed, through the router"),
        ("first chunk", "streamed first chunk, direct", "streamed first chunk, through the router"),
        ("stream end", "streamed to the end, direct", "streamed to the end, through the router"),
    ):
        overhead = statistics.median(samples[routed]) - statistics.median(samples[direct])
        print(f"\nrouter overhead, {label} (median routed - median direct): {overhead:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

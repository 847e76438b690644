"""Cache misses (or, with ``--cached``, hits) at a fixed concurrency against an instant OpenAI-compatible
stub, on the embedded SQLite defaults: throughput, latency percentiles and how many requests failed (for
instance 503 "database is locked" when experience writes contend for SQLite's lock).

Run with ``.venv/bin/python -m bench.concurrency_bench --concurrency 32 --requests 3000``. Set
``PYTHONPATH=<checkout>/service`` to measure another checkout's service code with the same client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

from bench.service_bench import (
    login,
    percentiles,
    router_on_stub,
    rss_mb,
)


async def load(
    base_url: str, auth: dict[str, str], requests: int, concurrency: int, cached: bool
) -> tuple[list[float], Counter[int], float]:
    """``requests`` POST /v1/execute from ``concurrency`` workers. The client is aiohttp, which costs far
    less CPU per request than httpx: on 2 cores the load generator must not be what is measured."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=auth) as session:

        async def worker() -> None:
            for i in counter:
                prompt = "the same prompt" if cached else f"prompt {i}"
                body = {"prompt": prompt, "persona": "developer", "task_type": "code_generation"}
                t0 = time.perf_counter()
                async with session.post("/v1/execute", json=body) as response:
                    await response.read()
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[response.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, statuses, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--cached", action="store_true", help="repeat one prompt: cache hits after the first")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="qr-concurrency-") as tmp_dir,
        router_on_stub(Path(tmp_dir)) as service,
        httpx.Client(base_url=service.url, timeout=60) as client,
    ):
        auth = login(client)
        latencies, statuses, elapsed = asyncio.run(
            load(service.url, auth, args.requests, args.concurrency, args.cached)
        )
        memory = rss_mb(service.pid)
    stats = percentiles(latencies)
    kind = "requests of one prompt" if args.cached else "cache misses"
    print(f"concurrency {args.concurrency}, {args.requests} {kind} in {elapsed:.1f} s")
    print(f"throughput {args.requests / elapsed:.1f} req/s; median {stats['median_ms']:.1f} ms; "
          f"p99 {stats['p99_ms']:.1f} ms; mean {statistics.fmean(latencies):.1f} ms")  # fmt: skip
    print(f"statuses {dict(sorted(statuses.items()))}; service RSS {memory:.1f} MB")
    return 0 if set(statuses) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())

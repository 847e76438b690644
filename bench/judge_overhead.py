"""Request latency with and without the judge, alternating in one run: in-process (the ASGI app through
Starlette's test client), test catalog, judge ``strong``, sample rate 0 then 1, twice each. The judge runs
after the response, so the two should not differ beyond noise.

Run with ``.venv/bin/python -m bench.judge_overhead`` (``--n`` requests per run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from tests.conftest import login, make_settings

from quantum_router.app import create_app


def median_ms(rate: float, n: int) -> tuple[float, str]:
    """p50 of ``n`` executes at judge sample ``rate``, and the judge's call counters afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(
            Path(tmp), judge_model="strong", judge_sample_rate=rate, judge_max_usd_per_hour=100.0,
            judge_backlog=1000, rate_limit_per_minute=100_000, rate_limit_burst=10_000,
        )  # fmt: skip
        with TestClient(create_app(settings)) as client:
            auth = login(client)
            times = []
            for i in range(n):
                body = {"prompt": f"q {i}", "persona": "developer", "task_type": "chat"}
                t0 = time.perf_counter()
                response = client.post("/v1/execute", json=body, headers=auth)
                times.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(response.text)
            calls = [
                m for m in client.get("/metrics").text.splitlines() if m.startswith("qr_judge_calls_total")
            ]
    return statistics.median(times), "; ".join(calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    for rate in (0.0, 1.0, 0.0, 1.0):
        p50, calls = median_ms(rate, args.n)
        print(
            f"judge sample rate {rate}: p50 {p50:.2f} ms over {args.n} requests; {calls or 'no judge calls'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

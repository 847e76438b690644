"""The router from several source trees, side by side in one run: what a change to the hot path bought.

    .venv/bin/python -m bench.trees before=/path/to/old/checkout/service after=
    .venv/bin/python -m bench.trees linger10=,QR_EXPERIENCE_LINGER_MS=10 linger50=,QR_EXPERIENCE_LINGER_MS=50

Each ``NAME=PATH[,SETTING=VALUE...]`` starts ``quantum-router serve`` with ``PYTHONPATH=PATH`` (empty: this
checkout) and those settings in its environment, each in front of an instant stub of its own, all
otherwise on their embedded defaults. The routers then take turns, round
after round: the stub direct, cache misses and cache hits one request at a time, and misses at
concurrency 16, all through ``/v1/chat/completions``. Taking turns spreads the machine's noise over every
variant alike; compare the rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

from bench.peer_overhead import MESSAGES, measure
from bench.report import one_at_a_time
from bench.service_bench import RouterOnStub, login, percentiles, router_on_stub

_KINDS = ("stub", "miss", "miss_router", "hit", "hit_router", "c16")


def _variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME=PATH[,SETTING=VALUE...]`` as (name, the server's extra environment)."""
    name, sep, rest = text.partition("=")
    path, *settings = rest.split(",")
    if not sep or not name or not all("=" in setting for setting in settings):
        raise argparse.ArgumentTypeError(
            f"expected NAME=PATH[,SETTING=VALUE...] (PATH may be empty), got {text!r}"
        )
    env = dict(setting.split("=", 1) for setting in settings)
    return name, {"PYTHONPATH": path, **env} if path else env


def _turn(router: RouterOnStub, auth: dict[str, str], n: int) -> tuple[dict[str, list[float]], float]:
    """One turn of one router: samples per kind, and concurrency 16's requests per second."""
    chat = "/v1/chat/completions"
    body = {"model": "router", "messages": MESSAGES, "max_tokens": 16}
    bypass = {**auth, "x-quantum-router-bypass-cache": "true"}
    stub, _ = asyncio.run(one_at_a_time(n, "POST", router.stub_url + chat, {**body, "model": "fast"}, {}))
    miss, miss_router = asyncio.run(one_at_a_time(n, "POST", router.url + chat, body, bypass))
    hit, hit_router = asyncio.run(one_at_a_time(n, "POST", router.url + chat, body, auth))
    c16, seconds = asyncio.run(measure(router.url, body, bypass, 2 * n, 16))
    samples = dict(zip(_KINDS, (stub, miss, miss_router, hit, hit_router, c16), strict=True))
    return samples, 2 * n / seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "variants",
        nargs="+",
        type=_variant,
        help="NAME=PATH[,SETTING=VALUE...]: PYTHONPATH of a source tree, and settings for its server",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=800, help="requests per kind, router and round")
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = {name: {k: [] for k in _KINDS} for name, _ in args.variants}
    rates: dict[str, list[float]] = {name: [] for name, _ in args.variants}
    with tempfile.TemporaryDirectory(prefix="qr-trees-") as tmp, contextlib.ExitStack() as stack:
        routers: dict[str, tuple[RouterOnStub, dict[str, str]]] = {}
        for name, extra in args.variants:
            (Path(tmp) / name).mkdir()
            router = stack.enter_context(router_on_stub(Path(tmp) / name, ("chat",), extra=extra))
            with httpx.Client(base_url=router.url, timeout=60) as client:
                routers[name] = (router, login(client))
        for _ in range(args.rounds):
            for name, (router, auth) in routers.items():
                turn, rate = _turn(router, auth, args.n)
                for kind, values in turn.items():
                    samples[name][kind].extend(values)
                rates[name].append(rate)
    print(
        "| variant | overhead c1 ms | miss p50 / p99 ms | router time, miss p50 | hit p50 / p99 ms "
        "| router time, hit p50 | c16 req/s (median round) | c16 p99 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, got in samples.items():
        miss, hit = percentiles(got["miss"]), percentiles(got["hit"])
        print(
            f"| {name} | {miss['median_ms'] - statistics.median(got['stub']):.2f} "
            f"| {miss['median_ms']:.2f} / {miss['p99_ms']:.2f} | {statistics.median(got['miss_router']):.2f} "
            f"| {hit['median_ms']:.2f} / {hit['p99_ms']:.2f} | {statistics.median(got['hit_router']):.2f} "
            f"| {statistics.median(rates[name]):.0f} | {percentiles(got['c16'])['p99_ms']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

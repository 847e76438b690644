"""What one batch of experiences costs the event loop to commit, on a SQLite file.

    .venv/bin/python -m bench.commit_cost --rows 5 50 --n 500
    PYTHONPATH=/path/to/old/checkout/service .venv/bin/python -m bench.commit_cost   # the same, older code

Each batch is inserted the way the experience writer inserts it (``store.add_experiences`` through
``Database.write``), one after another. Reported per batch: wall time, and the CPU time of the thread that
runs the event loop (``time.thread_time``), which is what a commit takes from the requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db import store
from quantum_router.db.engine import Database
from quantum_router.db.models import Base, new_id, utcnow
from quantum_router.settings import Settings


def _row(user_id: str) -> dict[str, Any]:
    """An experience shaped like a cache miss's: a sparse feature vector, packed text buckets, a variation."""
    return {
        "id": new_id(),
        "user_id": user_id,
        "created_at": utcnow(),
        "prompt_hash": "0" * 64,
        "persona": "developer",
        "task_type": "chat",
        "features": {"dim": 4096, "idx": list(range(0, 4000, 50)), "val": [0.125] * 80},
        "text_buckets": bytes(180),
        "action": "model-a",
        "propensity": 0.95,
        "explored": False,
        "variations": [{"model": "model-a", "ok": True, "latency_ms": 1.0}],
        "quality": 0.8,
        "quality_source": "judge",
        "cost_usd": 0.001,
        "latency_ms": 1.0,
        "cost_penalty": 0.0,
        "latency_penalty": 0.0,
        "reward": 0.7,
        "cache_hit": False,
        "policy_version": "bench",
    }


async def _measure(tmp: Path, sizes: list[int], n: int) -> dict[int, tuple[float, float]]:
    """Per batch size: (median wall ms, mean event-loop CPU ms) per batch."""
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'bench.db'}", jwt_secret="b" * 48))
    try:
        async with db.primary.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

        async def _user(session: AsyncSession) -> str:
            return (await store.add_user(session, "bench", "unused", ["user"])).id

        user_id = await db.write(_user)
        results: dict[int, tuple[float, float]] = {}
        for size in sizes:
            batches = [[_row(user_id) for _ in range(size)] for _ in range(n + n // 10)]

            for rows in batches[n:]:  # warm-up: connections open, statements compiled
                await db.write(partial(store.add_experiences, rows=rows))
            walls = []
            cpu_start = time.thread_time()
            for rows in batches[:n]:
                started = time.perf_counter()
                await db.write(partial(store.add_experiences, rows=rows))
                walls.append((time.perf_counter() - started) * 1000)
            results[size] = (statistics.median(walls), (time.thread_time() - cpu_start) / n * 1000)
        return results
    finally:
        await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[5, 50], help="rows per batch")
    parser.add_argument("--n", type=int, default=500, help="batches per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qr-commit-cost-") as tmp:
        results = asyncio.run(_measure(Path(tmp), args.rows, args.n))
    print("| rows per batch | batches | wall ms (median) | event-loop CPU ms (mean) |")
    print("| --- | --- | --- | --- |")
    for size, (wall, cpu) in results.items():
        print(f"| {size} | {args.n} | {wall:.3f} | {cpu:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

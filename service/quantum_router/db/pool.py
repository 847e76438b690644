"""Connection-pool efficiency: the share of checkouts served by an idle pooled connection.

A checkout that finds no idle connection must open one (overflow) or wait for one to be returned; both
cost the request time. The ratio is exported per engine (target > 95 % under the load scenario).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool


class PoolStats:
    """Checkout counters per engine name."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()
        self.immediate: Counter[str] = Counter()

    def efficiency(self, engine: str) -> float:
        """Immediate checkouts over all checkouts (1.0 before the first checkout)."""
        total = self.total[engine]
        return self.immediate[engine] / total if total else 1.0


def measured_pool(stats: PoolStats, engine: str) -> type[AsyncAdaptedQueuePool]:
    """A pool class that counts, for ``engine``, whether each checkout found an idle connection."""

    class MeasuredPool(AsyncAdaptedQueuePool):
        def _do_get(self) -> Any:
            idle = self.checkedin() > 0
            connection = super()._do_get()
            stats.total[engine] += 1
            stats.immediate[engine] += int(idle)
            return connection

        def recreate(self) -> MeasuredPool:
            # SQLAlchemy rebuilds pools (for example on dispose); keep measuring the new one.
            pool = super().recreate()
            pool.__class__ = MeasuredPool
            return pool  # type: ignore[return-value]

    return MeasuredPool

"""A circuit breaker for Redis: after a failure, skip it for a short while instead of waiting on it.

Without one, every request pays the full timeout of each Redis call (rate limiter, cache lookup, cache
store) for as long as Redis is unreachable: about three seconds a request. With it, the first failure
opens the circuit, calls are refused at once for ``open_seconds`` (the limiter falls back to local
buckets, the cache to a miss), then a single call probes Redis: success closes the circuit, failure opens
it again. The cache and the rate limiter share one breaker, so either's failure spares the other its wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Closed, open for ``open_seconds`` after a failure, then one probe at a time until a success."""

    def __init__(self, open_seconds: float, name: str = "redis", clock: Callable[[], float] = time.monotonic):
        self._open_seconds = open_seconds
        self._name = name
        self._clock = clock
        self._open_until = 0.0  # 0: closed
        self._probe_until = 0.0  # a probe is in flight until then (a lost probe must not block forever)

    @property
    def is_open(self) -> bool:
        """True while calls are being skipped."""
        return self._open_until > 0.0

    def allow(self) -> bool:
        """Whether a call may go to the dependency now (when open: one probe after the pause)."""
        if self._open_until == 0.0 or self._open_seconds == 0:
            return True
        now = self._clock()
        if now < self._open_until or now < self._probe_until:
            return False
        self._probe_until = now + self._open_seconds
        return True

    def success(self) -> None:
        """A call succeeded: close the circuit."""
        if self._open_until:
            log.info("%s answers again; using it", self._name)
        self._open_until = self._probe_until = 0.0

    def failure(self, reason: str) -> None:
        """A call failed: skip the dependency for the next ``open_seconds``."""
        if not self._open_until:
            pause = self._open_seconds
            log.warning("%s unavailable (%s); skipping it for %.1f s at a time", self._name, reason, pause)
        self._open_until = self._clock() + self._open_seconds
        self._probe_until = 0.0

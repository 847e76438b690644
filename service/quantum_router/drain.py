"""Whether the server has begun a graceful shutdown; ``/readyz`` answers 503 from then on."""

from __future__ import annotations


class Drain:
    """A one-way flag, raised once when shutdown begins and never lowered."""

    def __init__(self) -> None:
        self._draining = False

    @property
    def draining(self) -> bool:
        """True once shutdown has begun."""
        return self._draining

    def begin(self) -> None:
        """Mark the process as draining. Called from a signal handler, so it only sets a flag."""
        self._draining = True

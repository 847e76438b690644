"""Log set-up, shared by the command line and the worker processes of ``serve --workers``."""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Log at ``level`` to stderr with time, level and logger name."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every upstream request at INFO: one line per model call is noise, and costs time.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))

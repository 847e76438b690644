"""The real ASGI app behind a real uvicorn on a loopback port, in a thread of the test process.

For what the in-process ASGI transport cannot show: chunked uploads, connection handling, the client
address as the server sees it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from tests.ports import free_port


@contextmanager
def serving(app: ASGIApp, **config: object) -> Iterator[str]:
    """Serve ``app`` (lifespan included) on 127.0.0.1 until the block ends; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        # log_config=None: uvicorn leaves logging alone, so its errors reach pytest's caplog.
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, **config)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)

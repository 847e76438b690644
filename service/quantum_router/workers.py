"""``quantum-router serve --workers N``: N service processes on one listening socket.

The parent binds the port, migrates the database and creates the admin once (so the workers do not race to
do it), then spawns the workers, each a whole service (``create_app``) behind the same graceful drain as a
single process. What must agree between workers is shared, not per process:

- bearer tokens: one signing key (``QR_JWT_SECRET``, or one the parent draws for all of them);
- rate limits and the response cache: Redis, which the settings require for more than one worker;
- metrics: prometheus_client's multiprocess mode, in a directory the parent creates and removes, so any
  worker's ``/metrics`` (and ``QR_METRICS_PORT``, served by the parent) adds up all of them.

On SIGTERM or SIGINT the parent passes SIGTERM to every worker, each drains as a single process does, and
the parent returns once all have exited. A worker that dies is replaced; one that fails during start-up
stops the whole server, since its replacement would fail the same way.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from pydantic import SecretStr

from quantum_router.metrics import multiprocess_registry
from quantum_router.metrics_port import start_metrics_server
from quantum_router.settings import Settings

log = logging.getLogger(__name__)

# A worker's exit status when its application never started (as uvicorn's own).
STARTUP_FAILURE = 3
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so a killed parent leaves no worker behind
    holding the port (elsewhere, a no-op)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _worker(settings: Settings, sockets: list[socket.socket], parent: int) -> None:
    """One worker process: the whole service on the parent's socket."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the request above took effect
        return
    from quantum_router.app import create_app
    from quantum_router.logs import configure_logging
    from quantum_router.server import DrainingServer, server_config

    configure_logging(settings.log_level)
    app = create_app(settings)
    server = DrainingServer(server_config(app, settings), app.state.drain)
    server.run(sockets=sockets)
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


async def _prepare(settings: Settings) -> None:
    from quantum_router.context import prepare_database
    from quantum_router.db.engine import Database

    db = Database(settings)
    try:
        await prepare_database(db, settings)
    finally:
        await db.dispose()


class WorkerPool:
    """Spawns, replaces and stops the worker processes."""

    def __init__(self, settings: Settings, sockets: list[socket.socket], metrics_dir: str) -> None:
        self._settings = settings
        self._sockets = sockets
        self._metrics_dir = metrics_dir
        self._context = multiprocessing.get_context("spawn")
        self.processes: list[BaseProcess] = []

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=_worker,
            args=(self._settings, self._sockets, os.getpid()),
            name=f"quantum-router-worker-{index}",
        )
        process.start()
        return process

    def start(self) -> None:
        """Start ``settings.workers`` processes."""
        self.processes = [self._spawn(i) for i in range(self._settings.workers)]

    def replace_dead(self) -> bool:
        """Replace each worker that has exited; False (replacing none) when one failed to start."""
        for i, process in enumerate(self.processes):
            if process.is_alive():
                continue
            process.join()
            self._forget(process)
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker %s failed to start; stopping", process.pid)
                return False
            log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
            self.processes[i] = self._spawn(i)
        return True

    def stop(self) -> None:
        """SIGTERM every worker (each drains), then wait for all of them."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join()
            self._forget(process)

    def _forget(self, process: BaseProcess) -> None:
        # A dead worker's "live" gauges (in-flight requests, queue depth) must stop counting.
        if process.pid is not None:
            mark_process_dead(process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]


def serve_workers(settings: Settings) -> int:
    """Serve with ``settings.workers`` processes until SIGTERM or SIGINT; 1 when a worker failed to start."""
    if settings.jwt_secret is None:
        log.warning(
            "QR_JWT_SECRET is not set: the workers share a random key, and tokens die with the server"
        )
        settings = settings.model_copy(update={"jwt_secret": SecretStr(secrets.token_urlsafe(48))})
    metrics_dir = tempfile.mkdtemp(prefix="quantum-router-metrics-")
    # Read by prometheus_client when a worker imports it: spawned workers inherit the environment.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    stop = threading.Event()

    def _on_signal(sig: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    metrics_server = None
    try:
        asyncio.run(_prepare(settings))
        sock = uvicorn.Config(
            "quantum_router.app:create_app", host=settings.host, port=settings.port
        ).bind_socket()
        metrics_server = start_metrics_server(multiprocess_registry(metrics_dir), settings)
        pool = WorkerPool(settings, [sock], metrics_dir)
        pool.start()
        healthy = True
        while healthy and not stop.wait(0.5):
            healthy = pool.replace_dead()
        pool.stop()
        sock.close()
        return 0 if healthy else 1
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

"""The body-size guard on a real server: declared and chunked bodies alike are cut off at the limit."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from quantum_router.api.middleware import RequestContextMiddleware
from quantum_router.app import create_app
from quantum_router.metrics import Metrics
from tests.conftest import ADMIN_PASSWORD, make_settings
from tests.live_server import serving

_MIB = 1024 * 1024


def _login_padded_to(size: int) -> bytes:
    """A valid login body padded with JSON whitespace to ``size`` bytes: it parses, and it is correct."""
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    # A generator has no length, so httpx sends it with Transfer-Encoding: chunked and no Content-Length.
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunked_and_declared_bodies_over_the_limit_are_413_before_authentication(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    json_type = {"content-type": "application/json"}
    with serving(app) as base, httpx.Client(base_url=base, timeout=60, headers=json_type) as client:
        small = _login_padded_to(4096)
        assert client.post("/v1/auth/login", content=_chunks(small)).status_code == 200

        huge = _login_padded_to(8 * _MIB)
        chunked = client.post("/v1/auth/login", content=_chunks(huge))
        assert chunked.status_code == 413
        assert chunked.json()["reason"] == "too_large"
        assert chunked.headers["x-request-id"]

        declared = client.post("/v1/auth/login", content=huge)  # bytes: sent with Content-Length
        assert declared.status_code == 413
        # The connection is still usable afterwards, and both refusals were counted.
        exposition = client.get("/metrics").text
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("qr_http_request_duration_seconds_count") and 'status="413"' in line
    ]
    assert sum(counts) == 2


def test_an_app_that_reads_the_body_itself_is_cut_off_too(caplog: pytest.LogCaptureFixture) -> None:
    # A handler outside FastAPI's body parsing sees the cut-off as a disconnect and raises; the client
    # still gets the 413, and nothing is logged as a server error.
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        body = await Request(scope, receive).body()
        await PlainTextResponse(str(len(body)))(scope, receive, send)

    app = RequestContextMiddleware(echo, metrics=Metrics(), slow_seconds=10, max_body_bytes=1000)
    with serving(app, lifespan="off") as base, httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/", content=_chunks(b"x" * 1000, 100)).text == "1000"
        cut = client.post("/", content=_chunks(b"x" * 100_000, 100))
        assert cut.status_code == 413
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

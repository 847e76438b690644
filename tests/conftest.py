"""Shared fixtures: settings on a fresh SQLite file and a client running the real ASGI app and lifespan."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from quantum_router.app import create_app
from quantum_router.db.models import Experience
from quantum_router.settings import Settings

ADMIN_PASSWORD = "admin-password-for-tests"
JWT_SECRET = "x" * 48
TEST_CATALOG = Path(__file__).parent / "data" / "catalog.yaml"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for one test: its own SQLite file, fast simulated models, fixed seed."""
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'router.db'}",
        "admin_password": ADMIN_PASSWORD,
        "jwt_secret": JWT_SECRET,
        "catalog_file": TEST_CATALOG,
        "simulation_time_scale": 0.01,
        "random_seed": 7,
        "epsilon": 0.0,
        "policy_poll_seconds": 3600,
        "request_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_factory(tmp_path: Path) -> Iterator[ClientFactory]:
    """Build clients with settings overrides; every client's lifespan is closed at teardown."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(tmp_path, **overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(client_factory: ClientFactory) -> TestClient:
    """A client on default test settings."""
    return client_factory()


def login(client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    """Authorization headers for a user."""
    response = client.post("/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    """Admin authorization headers for ``client``."""
    return login(client)


def stored_experience(client: TestClient, experience_id: str) -> Experience:
    """The experience row as the database holds it now (read on the primary, in the app's own loop)."""
    services = client.app.state.services  # type: ignore[attr-defined]

    async def _get() -> Experience:
        # Acknowledged rows may still be queued for the batch writer.
        await services.experiences.flushed()
        async with services.db.write_session() as session:
            found: Experience | None = await session.get(Experience, experience_id)
            assert found is not None
            return found

    row: Experience = client.portal.call(_get)  # type: ignore[union-attr]
    return row


@contextmanager
def primary_down(client: TestClient, tmp_path: Path) -> Iterator[None]:
    """Inside the block every connection to the app's primary database fails (a SQLite file in a directory
    that does not exist); after it, the real primary is back."""
    services = client.app.state.services  # type: ignore[attr-defined]
    primary = services.db.primary
    dead = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    services.db.primary = dead
    services.db.write_session.configure(bind=dead)
    try:
        yield
    finally:
        services.db.primary = primary
        services.db.write_session.configure(bind=primary)
        client.portal.call(dead.dispose)  # type: ignore[union-attr]

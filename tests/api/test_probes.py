"""The Kubernetes probes: /livez ignores dependencies, /readyz follows the database and the drain and
exports what its pings found as qr_dependency_up (what the chart's database and cache alerts read)."""

from pathlib import Path
from signal import SIGTERM

import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from quantum_router.server import DrainingServer
from tests.conftest import ClientFactory, primary_down
from tests.ports import free_port


def _dependency_up(client: TestClient) -> dict[str, float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        s.labels["dependency"]: s.value for f in families if f.name == "qr_dependency_up" for s in f.samples
    }


def test_livez_and_readyz_answer_200_without_credentials(client: TestClient) -> None:
    live = client.get("/livez")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok", "cache": "ok"})


def test_a_database_outage_makes_readyz_503_but_leaves_livez_200(client: TestClient, tmp_path: Path) -> None:
    with primary_down(client, tmp_path):
        assert client.get("/v1/health").status_code == 503
        live = client.get("/livez")
        ready = client.get("/readyz")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not_ready",
        "reason": "database_unavailable",
        "database": "down",
        "cache": "ok",
    }


def test_a_cache_outage_leaves_readyz_200_and_shows_in_the_body(client_factory: ClientFactory) -> None:
    # Redis on a port nothing listens on: every cache call fails for real.
    client = client_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.05)
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "cache": "degraded"},
    )


def test_readyz_is_503_draining_once_the_server_handles_sigterm(client: TestClient) -> None:
    app = client.app
    server = DrainingServer(uvicorn.Config(app), app.state.drain)  # type: ignore[attr-defined]
    assert client.get("/readyz").status_code == 200
    # What uvicorn's signal handler calls on SIGTERM, before it stops accepting and drains.
    server.handle_exit(SIGTERM, None)
    assert server.should_exit
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"status": "not_ready", "reason": "draining"})
    assert client.get("/livez").status_code == 200


def test_probes_take_no_rate_limit_token(client_factory: ClientFactory) -> None:
    client = client_factory(rate_limit_burst=1, rate_limit_per_minute=1)
    statuses = {client.get(path).status_code for path in ("/livez", "/readyz") for _ in range(5)}
    assert statuses == {200}


def test_readyz_exports_every_dependency_up(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    assert _dependency_up(client) == {"database": 1, "cache": 1}


def test_a_database_outage_turns_its_gauge_to_0(client: TestClient, tmp_path: Path) -> None:
    client.get("/readyz")
    with primary_down(client, tmp_path):
        assert client.get("/readyz").status_code == 503
        assert _dependency_up(client) == {"database": 0, "cache": 1}


def test_a_cache_outage_turns_its_gauge_to_0(client_factory: ClientFactory) -> None:
    client = client_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.05)
    client.get("/v1/health")
    assert _dependency_up(client) == {"database": 1, "cache": 0}

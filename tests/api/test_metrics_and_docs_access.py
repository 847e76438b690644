"""/metrics and the API docs: open by default for a local run; a token, or off, when production asks."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ClientFactory

TOKEN = "scrape-token-" + "m" * 24


def test_metrics_and_docs_are_open_by_default(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_a_metrics_token_is_required_when_set(client_factory: ClientFactory) -> None:
    client = client_factory(metrics_token=TOKEN)
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in anonymous.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200
    assert "qr_http_request_duration_seconds" in scraped.text
    assert client.get("/readyz").status_code == 200  # probes never need it


def test_docs_can_be_turned_off(client_factory: ClientFactory) -> None:
    client = client_factory(docs_enabled=False)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert client.get("/v1/capabilities").status_code == 200

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import ClientFactory, login, primary_down


def test_health_reports_each_dependency(client: TestClient) -> None:
    body = client.get("/v1/health").json()
    assert body == {
        **body,
        "status": "ok",
        "database": "ok",
        "cache": "ok",
        "cache_backend": "memory",
        "policy_loaded": True,
        "policy_version": "prior-1",
    }


def test_health_is_503_and_writes_are_503_when_the_database_is_gone(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    # Experiences acknowledged on commit, so an execute needs the database (queued ones: test_execute.py).
    client = client_factory(experience_acknowledge="commit")
    auth = login(client)
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat", "options": {"bypass_cache": True}}
    with primary_down(client, tmp_path):
        response = client.get("/v1/health")
        write = client.post("/v1/execute", json=body, headers=auth)
    assert response.status_code == 503
    assert response.json()["database"] == "down"
    assert write.status_code == 503
    assert write.json()["reason"] == "database_unavailable"
    assert write.headers["retry-after"]


def test_capabilities_lists_models_personas_tasks_limits_and_policy(client: TestClient) -> None:
    body = client.get("/v1/capabilities").json()
    names = [m["name"] for m in body["models"]]
    assert names == ["cheap", "strong", "broken", "slow"]
    assert body["models"][0] == {
        "name": "cheap",
        "provider": "simulated",
        "cost_per_1k_tokens": 0.0005,
        "task_types": ["chat", "code_generation"],
    }
    assert body["personas"] == ["developer", "architect"]
    assert "code_analysis" in body["task_types"]
    assert body["variations"]["max"] == 5
    assert body["max_prompt_bytes"] == 32 * 1024
    assert body["policy_version"] == "prior-1"


def test_metrics_expose_request_histogram_by_route_template_and_router_counters(client: TestClient) -> None:
    auth = login(client)
    client.post(
        "/v1/execute", json={"prompt": "a", "persona": "developer", "task_type": "chat"}, headers=auth
    )
    client.post(
        "/v1/execute", json={"prompt": "a", "persona": "developer", "task_type": "chat"}, headers=auth
    )
    client.get("/v1/jobs/some-id", headers=auth)
    text = client.get("/metrics").text
    assert (
        'qr_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}",status="404"} 1.0'
        in text
    )
    assert "some-id" not in text
    assert 'qr_cache_requests_total{result="hit"} 1.0' in text
    assert 'qr_cache_requests_total{result="miss"} 1.0' in text
    assert "qr_model_selections_total{" in text
    assert "qr_cost_usd_total{" in text
    assert "qr_variations_total{" in text
    assert "qr_cache_hit_ratio 0.5" in text
    efficiency = next(
        line for line in text.splitlines() if line.startswith('qr_db_pool_efficiency{engine="primary"}')
    )
    assert 0.5 < float(efficiency.split()[-1]) <= 1.0


def test_api_keys_work_as_bearer_and_x_api_key(client_factory: ClientFactory) -> None:
    from quantum_router.users import create_api_key

    client = client_factory()
    services = client.app.state.services  # type: ignore[attr-defined]
    key = client.portal.call(create_api_key, services.db, "admin", "ci")  # type: ignore[union-attr]
    assert key.startswith("qr_")
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
    assert (
        client.post("/v1/execute", json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    assert client.post("/v1/execute", json=body, headers={"X-API-Key": key}).status_code == 200
    assert client.post("/v1/execute", json=body, headers={"X-API-Key": key[:-2] + "zz"}).status_code == 401


def test_slow_requests_are_logged(client_factory: ClientFactory, caplog: object) -> None:
    import logging

    client = client_factory(slow_request_seconds=0.000001)
    with caplog.at_level(logging.WARNING, logger="quantum_router.access"):  # type: ignore[attr-defined]
        client.get("/v1/capabilities")
    assert "slow request GET /v1/capabilities" in caplog.text  # type: ignore[attr-defined]


def test_an_unhandled_error_is_a_500_with_a_request_id_counted_in_the_histogram(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    services.execution.execute = broken
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
    response = client.post("/v1/execute", json=body, headers=login(client))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "reason": "internal"}
    assert response.headers["x-request-id"]
    text = client.get("/metrics").text
    assert (
        'qr_http_request_duration_seconds_count{method="POST",route="/v1/execute",status="500"} 1.0' in text
    )


def test_the_histogram_method_label_is_bounded(client: TestClient) -> None:
    for method in ("BREW", "PROPFIND", "X-1"):
        client.request(method, "/v1/capabilities")
    text = client.get("/metrics").text
    assert (
        'qr_http_request_duration_seconds_count{method="other",route="/v1/capabilities",status="405"} 3.0'
        in text
    )
    assert "BREW" not in text

from pathlib import Path

from fastapi.testclient import TestClient

from quantum_router.users import create_user
from tests.conftest import ClientFactory, login, primary_down, stored_experience

SIMPLE = {
    "prompt": "Write a function that reverses a list",
    "persona": "developer",
    "task_type": "code_generation",
}
COMPLEX = {
    "prompt": "Review this module for race conditions",
    "persona": "architect",
    "task_type": "code_analysis",
}


def test_simple_task_runs_one_model_and_reports_cost_and_policy(
    client: TestClient, auth: dict[str, str]
) -> None:
    response = client.post("/v1/execute", json=SIMPLE, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cache"] == "miss"
    assert len(body["variations"]) == 1
    assert body["model"] == body["variations"][0]["model"]
    assert body["answer"].startswith("[simulated]")
    assert body["cost_usd"] > 0
    assert body["latency_ms"] > 0
    assert body["policy_version"] == "prior-1"
    assert body["experience_id"]
    assert float(response.headers["x-process-time"]) > 0
    assert response.headers["x-request-id"]


def test_complex_task_runs_three_variations_and_returns_the_best(
    client: TestClient, auth: dict[str, str]
) -> None:
    body = client.post("/v1/execute", json=COMPLEX, headers=auth).json()
    variations = body["variations"]
    assert len(variations) == 3
    best = max((v for v in variations if v["status"] == "ok"), key=lambda v: v["score"])
    assert body["model"] == best["model"]
    assert body["cost_usd"] == round(sum(v["cost_usd"] for v in variations), 8)


def test_variation_count_and_forced_model_are_honoured(client: TestClient, auth: dict[str, str]) -> None:
    body = {**SIMPLE, "options": {"variations": 5, "model": "cheap"}}
    result = client.post("/v1/execute", json=body, headers=auth).json()
    assert len(result["variations"]) == 5
    assert {v["model"] for v in result["variations"]} == {"cheap"}
    assert len({v["temperature"] for v in result["variations"]}) == 5


def test_second_identical_request_is_a_cache_hit(client: TestClient, auth: dict[str, str]) -> None:
    first = client.post("/v1/execute", json=SIMPLE, headers=auth).json()
    again = {**SIMPLE, "prompt": SIMPLE["prompt"] + "  \r\n"}  # line endings and trailing space only
    second = client.post("/v1/execute", json=again, headers=auth).json()
    assert second["cache"] == "hit"
    assert second["answer"] == first["answer"]
    assert second["cost_usd"] == 0
    assert second["experience_id"] != first["experience_id"]
    bypass = client.post(
        "/v1/execute", json={**SIMPLE, "options": {"bypass_cache": True}}, headers=auth
    ).json()
    assert bypass["cache"] == "miss"


def test_failed_model_falls_back_to_the_next_best(client: TestClient, auth: dict[str, str]) -> None:
    # Five variations over four models: the ones landing on "broken" must fall back to a working model.
    body = {**COMPLEX, "options": {"variations": 4}}
    result = client.post("/v1/execute", json=body, headers=auth).json()
    assert all(v["model"] != "broken" or v["status"] != "ok" for v in result["variations"])
    assert result["model"] in {"cheap", "strong"}


def test_async_execution_returns_202_and_the_job_result(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post("/v1/execute", json={**SIMPLE, "options": {"async": True}}, headers=auth)
    assert response.status_code == 202
    job_url = response.json()["status_url"]
    assert response.headers["location"] == job_url
    for _ in range(200):
        job = client.get(job_url, headers=auth).json()
        if job["status"] != "pending":
            break
    assert job["status"] == "succeeded"
    assert job["result"]["answer"].startswith("[simulated]")


def test_jobs_are_private(client: TestClient, auth: dict[str, str]) -> None:
    from quantum_router.users import create_user

    job_url = client.post("/v1/execute", json={**SIMPLE, "options": {"async": True}}, headers=auth).json()[
        "status_url"
    ]
    services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(create_user, services.db, "bob", "bob-password-1", ["user"])  # type: ignore[union-attr]
    bob = login(client, "bob", "bob-password-1")
    assert client.get(job_url, headers=bob).status_code == 403
    assert client.get("/v1/jobs/does-not-exist", headers=bob).status_code == 404


def test_all_providers_failing_is_503_and_timeouts_are_504(client_factory: ClientFactory) -> None:
    client = client_factory(request_timeout_seconds=0.3)
    auth = login(client)
    failed = client.post("/v1/execute", json={**SIMPLE, "options": {"model": "broken"}}, headers=auth)
    assert failed.status_code == 503
    assert failed.json()["reason"] == "upstream_failed"
    # "slow" takes about 1 s against a 0.3 s deadline. Whether the provider's own timeout or the executor's
    # cancellation fires first, the variation is timed out: 504 either way.
    slow = client.post("/v1/execute", json={**SIMPLE, "options": {"model": "slow"}}, headers=auth)
    assert slow.status_code == 504
    assert slow.json()["reason"] == "upstream_timeout"


def test_a_failed_choice_is_logged_with_zero_quality_even_when_a_fallback_answers(client: TestClient) -> None:
    from quantum_router.routing import Decision

    services = client.app.state.services  # type: ignore[attr-defined]
    execution = services.execution
    original = execution.route

    def route_to_broken(request: object) -> tuple[object, Decision]:
        features, _ = original(request)
        return features, Decision("broken", ["broken", "cheap", "strong"], 1.0, False, {"broken": 0.5})

    execution.route = route_to_broken
    result = client.post("/v1/execute", json=SIMPLE, headers=login(client)).json()
    assert result["model"] == "cheap"

    row = stored_experience(client, result["experience_id"])
    assert (row.action, row.quality) == ("broken", 0.0)


def test_a_paid_answer_is_cached_even_when_its_experience_cannot_be_written(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    # Acknowledged only after the commit: a failed write is a 503.
    client = client_factory(experience_acknowledge="commit")
    auth = login(client)
    # The token's user is looked up once per cache period: that happens here, while the database is up.
    assert client.get("/v1/jobs/none", headers=auth).status_code == 404
    # The primary fails after the upstream call.
    with primary_down(client, tmp_path):
        lost = client.post("/v1/execute", json=SIMPLE, headers=auth)
    assert lost.status_code == 503  # the documented answer when the database fails
    assert lost.json()["reason"] == "database_unavailable"
    retry = client.post("/v1/execute", json=SIMPLE, headers=auth)
    assert retry.status_code == 200, retry.text
    assert retry.json()["cache"] == "hit"  # the upstream call is not paid for twice
    assert retry.json()["cost_usd"] == 0


def test_a_queued_experience_survives_a_database_outage(
    client_factory: ClientFactory, tmp_path: Path
) -> None:
    # Acknowledged once queued (the default): the answer goes out, and the row is written when the database
    # is back.
    client = client_factory()
    auth = login(client)
    # An authenticated call first: a token's user is then cached (QR_API_KEY_CACHE_SECONDS), as it is for
    # the clients of a running service when its database goes away.
    assert client.get("/v1/experiences", headers=auth).status_code == 200
    with primary_down(client, tmp_path):
        answered = client.post("/v1/execute", json=SIMPLE, headers=auth)
    assert answered.status_code == 200, answered.text
    rated = client.post(
        "/v1/feedback", json={"experience_id": answered.json()["experience_id"], "rating": 4}, headers=auth
    )
    assert rated.status_code == 200, rated.text


def test_the_cache_is_per_user_by_default_and_shared_when_global(client_factory: ClientFactory) -> None:
    for scope, expected in (("user", "miss"), ("global", "hit")):
        client = client_factory(cache_scope=scope)
        services = client.app.state.services  # type: ignore[attr-defined]
        client.portal.call(create_user, services.db, f"eve-{scope}", "eve-password-1", ["user"])  # type: ignore[union-attr]
        prompt = {**SIMPLE, "prompt": f"what did the admin ask ({scope})?"}
        assert client.post("/v1/execute", json=prompt, headers=login(client)).json()["cache"] == "miss"
        other = login(client, f"eve-{scope}", "eve-password-1")
        # Per user, a hit would tell eve that someone sent this prompt within the last hour.
        assert client.post("/v1/execute", json=prompt, headers=other).json()["cache"] == expected


def test_code_prompts_differing_only_in_indentation_or_case_get_their_own_answers(
    client: TestClient, auth: dict[str, str]
) -> None:
    flat = "def f(x):\nif x:\n    return 1\nreturn 2\n\nIs this valid?"
    nested = "def f(x):\n    if x:\n        return 1\n    return 2\n\nIs this valid?"
    body = {"persona": "developer", "task_type": "code_generation"}
    assert client.post("/v1/execute", json={**body, "prompt": flat}, headers=auth).json()["cache"] == "miss"
    assert client.post("/v1/execute", json={**body, "prompt": nested}, headers=auth).json()["cache"] == "miss"
    assert (
        client.post("/v1/execute", json={**body, "prompt": nested.upper()}, headers=auth).json()["cache"]
        == "miss"
    )
    windows = nested.replace("\n", "\r\n") + "  \r\n"
    assert client.post("/v1/execute", json={**body, "prompt": windows}, headers=auth).json()["cache"] == "hit"

from fastapi.testclient import TestClient

from tests.conftest import ClientFactory, login

SIMPLE = {"prompt": "hi", "persona": "developer", "task_type": "chat"}


def _loc(response: object) -> list[str]:
    return response.json()["detail"][0]["loc"]  # type: ignore[attr-defined, no-any-return]


def test_unknown_persona_task_type_and_model_are_422_naming_the_field(
    client: TestClient, auth: dict[str, str]
) -> None:
    cases = {
        ("body", "persona"): {**SIMPLE, "persona": "pirate"},
        ("body", "task_type"): {**SIMPLE, "task_type": "poetry"},
        ("body", "options.model"): {**SIMPLE, "options": {"model": "gpt-17"}},
    }
    for loc, body in cases.items():
        response = client.post("/v1/execute", json=body, headers=auth)
        assert response.status_code == 422
        assert tuple(_loc(response)) == loc


def test_schema_errors_are_422(client: TestClient, auth: dict[str, str]) -> None:
    for body, field in (
        ({"persona": "developer", "task_type": "chat"}, "prompt"),
        ({**SIMPLE, "prompt": ""}, "prompt"),
        ({**SIMPLE, "options": {"variations": 6}}, "variations"),
        ({**SIMPLE, "surprise": 1}, "surprise"),
    ):
        response = client.post("/v1/execute", json=body, headers=auth)
        assert response.status_code == 422
        assert _loc(response)[-1] == field
    assert client.post("/v1/execute", content=b"{not json", headers=auth).status_code == 422


def test_prompt_over_the_limit_is_413(client_factory: ClientFactory) -> None:
    client = client_factory(max_prompt_bytes=1024)
    auth = login(client)
    just_right = client.post("/v1/execute", json={**SIMPLE, "prompt": "é" * 512}, headers=auth)
    assert just_right.status_code == 200
    too_big = client.post("/v1/execute", json={**SIMPLE, "prompt": "é" * 513}, headers=auth)
    assert too_big.status_code == 413
    assert too_big.json()["reason"] == "prompt_too_large"
    huge = client.post("/v1/execute", json={**SIMPLE, "prompt": "a" * 200_000}, headers=auth)
    assert huge.status_code == 413


def test_rate_limit_is_429_with_retry_after(client_factory: ClientFactory) -> None:
    client = client_factory(rate_limit_burst=3, rate_limit_per_minute=6)
    auth = login(client)
    codes = [client.post("/v1/execute", json=SIMPLE, headers=auth) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["retry-after"]) <= 10


def test_unknown_route_is_404_not_500(client: TestClient) -> None:
    assert client.get("/v1/nothing").status_code == 404

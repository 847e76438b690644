"""The OpenAI-compatible adapter against a real HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from quantum_router.catalog import ModelSpec
from quantum_router.providers.base import CompletionRequest, ProviderError, ProviderTimeout
from quantum_router.providers.openai_compat import OpenAICompatibleProvider
from tests.conftest import ClientFactory, login
from tests.openai_stub import StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


def _provider(stub: StubServer, *names: str, retries: int = 2) -> OpenAICompatibleProvider:
    models = {
        n: ModelSpec(
            name=n,
            provider="openai",
            cost_per_1k_tokens=0.001,
            base_url=stub.base_url,
            api_key_env="QR_T_KEY",
        )
        for n in names
    }
    return OpenAICompatibleProvider(models, max_retries=retries, backoff_seconds=0.01)


def _request(model: str, timeout: float = 5.0) -> CompletionRequest:
    return CompletionRequest(model, "be brief", "hello", 0.3, 64, timeout)


async def test_completion_is_parsed_and_the_key_is_sent(
    stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QR_T_KEY", "sk-test-123")
    provider = _provider(stub, "ok-model")
    completion = await provider.complete(_request("ok-model"))
    await provider.close()
    assert completion.text == "stub answer from ok-model"
    assert (completion.prompt_tokens, completion.completion_tokens) == (12, 8)
    assert stub.headers[0]["authorization"] == "Bearer sk-test-123"
    assert stub.bodies[0]["messages"][1] == {"role": "user", "content": "hello"}


async def test_retryable_errors_are_retried_until_success(stub: StubServer) -> None:
    provider = _provider(stub, "fail-2-then-ok")
    completion = await provider.complete(_request("fail-2-then-ok"))
    await provider.close()
    assert completion.text.startswith("stub answer")
    assert stub.calls["fail-2-then-ok"] == 3


async def test_retries_are_bounded(stub: StubServer) -> None:
    provider = _provider(stub, "status-429", retries=2)
    with pytest.raises(ProviderError) as info:
        await provider.complete(_request("status-429"))
    await provider.close()
    assert info.value.status == 429
    assert stub.calls["status-429"] == 3


async def test_client_errors_are_not_retried(stub: StubServer) -> None:
    provider = _provider(stub, "status-400")
    with pytest.raises(ProviderError) as info:
        await provider.complete(_request("status-400"))
    await provider.close()
    assert not info.value.retryable
    assert stub.calls["status-400"] == 1


async def test_timeout_is_enforced(stub: StubServer) -> None:
    provider = _provider(stub, "delay-2")
    started = time.perf_counter()
    with pytest.raises(ProviderTimeout):
        await provider.complete(_request("delay-2", timeout=0.3))
    await provider.close()
    assert time.perf_counter() - started < 1.5


async def test_malformed_answers_are_errors(stub: StubServer) -> None:
    provider = _provider(stub, "bad-json")
    with pytest.raises(ProviderError):
        await provider.complete(_request("bad-json"))
    await provider.close()


def test_service_falls_back_from_a_failing_upstream_model(
    stub: StubServer, client_factory: ClientFactory, tmp_path: Path
) -> None:
    catalog = {
        "personas": ["developer"],
        "task_types": ["chat"],
        "models": [
            {
                "name": "primary",
                "provider": "openai",
                "cost_per_1k_tokens": 0.01,
                "base_url": stub.base_url,
                "upstream_model": "status-500",
            },
            {
                "name": "backup",
                "provider": "openai",
                "cost_per_1k_tokens": 0.001,
                "base_url": stub.base_url,
                "upstream_model": "healthy",
            },
        ],
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    # With the cost knob at 0 the prior's cost penalty is removed, so the dearer "primary" ranks first.
    client: TestClient = client_factory(catalog_file=path, provider_backoff_seconds=0.01, cost_weight=0.0)
    body = {"prompt": "hi", "persona": "developer", "task_type": "chat"}
    result = client.post("/v1/execute", json=body, headers=login(client)).json()
    assert result["model"] == "backup"
    assert result["answer"] == "stub answer from healthy"
    assert stub.calls["status-500"] == 3  # first try plus two retries, then the fallback

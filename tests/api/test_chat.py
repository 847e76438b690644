"""/v1/chat/completions and /v1/models through OpenAI's own Python client, against the service running on a
loopback port and an OpenAI-compatible stub upstream (tests/openai_stub.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient

from quantum_router.app import create_app
from quantum_router.db.engine import Database
from quantum_router.settings import Settings
from quantum_router.users import create_api_key
from tests.conftest import ClientFactory, login, make_settings
from tests.openai_stub import StubServer
from tests.ports import free_port

CONVERSATION: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another one, please."},
]


@dataclass
class Served:
    """The router on a loopback port, its stub upstream and an API key."""

    stub: StubServer
    base_url: str
    api_key: str
    settings: Settings

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, **kwargs)


def _catalog(tmp_path: Path, stub: StubServer) -> Path:
    def upstream(name: str, upstream_model: str, cost: float) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "cost_per_1k_tokens": cost,
            "base_url": stub.base_url,
            "upstream_model": upstream_model,
        }

    catalog = {
        "personas": ["developer", "architect"],
        "task_types": ["chat", "code_generation"],
        "models": [
            upstream("instant", "instant", 0.001),
            upstream("slow-stream", "stream-slow-0.3", 0.002),
            upstream("breaks", "stream-break", 0.002),
            # The cheapest, so the policy tries it first: the alias then shows the fallback.
            upstream("refuses", "status-400", 0.0005),
        ],
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    stub = StubServer().start()
    settings = make_settings(tmp_path, catalog_file=_catalog(tmp_path, stub), provider_max_retries=0)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.02)

    async def key() -> str:
        db = Database(settings)
        try:
            return await create_api_key(db, "admin", "openai-client")
        finally:
            await db.dispose()

    try:
        yield Served(stub, f"http://127.0.0.1:{port}/v1", asyncio.run(key()), settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        stub.stop()


def test_a_plain_completion_with_the_router_alias(served: Served) -> None:
    raw = served.client().chat.completions.with_raw_response.create(model="router", messages=CONVERSATION)
    answer = raw.parse()
    # The policy's first choice refused (400), so the next model in its ranking answered.
    assert served.stub.calls["status-400"] == 1
    assert answer.choices[0].message.content == "stub answer from instant"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 20
    assert raw.headers["x-quantum-router-model"] == answer.model
    assert raw.headers["x-quantum-router-cache"] == "miss"
    assert float(raw.headers["x-quantum-router-cost-usd"]) > 0
    assert answer.id == f"chatcmpl-{raw.headers['x-quantum-router-experience-id']}"
    # The conversation reaches the upstream as it was sent.
    assert served.stub.bodies[-1]["messages"] == CONVERSATION


def test_a_forced_model_gets_the_callers_parameters(served: Served) -> None:
    raw = served.client().chat.completions.with_raw_response.create(
        model="instant", messages=CONVERSATION, temperature=0.1, stop=["\n"], seed=3, max_tokens=50, user="u1"
    )
    assert raw.headers["x-quantum-router-model"] == "instant"
    sent = served.stub.bodies[-1]
    assert sent["model"] == "instant"
    assert (sent["temperature"], sent["stop"], sent["seed"], sent["max_tokens"], sent["user"]) == (
        0.1, ["\n"], 3, 50, "u1",
    )  # fmt: skip


def test_a_repeat_is_a_cache_hit_that_costs_nothing(served: Served) -> None:
    client = served.client()
    first = client.chat.completions.with_raw_response.create(model="instant", messages=CONVERSATION)
    calls = sum(served.stub.calls.values())
    again = client.chat.completions.with_raw_response.create(model="instant", messages=CONVERSATION)
    assert sum(served.stub.calls.values()) == calls
    assert again.headers["x-quantum-router-cache"] == "hit"
    assert float(again.headers["x-quantum-router-cost-usd"]) == 0
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    # Another conversation ending in the same question is another request.
    other = [{"role": "user", "content": "Name a colour."}, *CONVERSATION[2:]]
    third = client.chat.completions.with_raw_response.create(model="instant", messages=other)
    assert third.headers["x-quantum-router-cache"] == "miss"


def test_chunks_arrive_before_the_upstream_has_finished(served: Served) -> None:
    stream = served.client().chat.completions.create(
        model="slow-stream", messages=CONVERSATION, stream=True, stream_options={"include_usage": True}
    )
    text: list[str] = []
    first_content_while_upstream_busy = None
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                if first_content_while_upstream_busy is None:
                    first_content_while_upstream_busy = "stream-slow-0.3" not in served.stub.stream_ended
                text.append(choice.delta.content)
    assert first_content_while_upstream_busy is True
    assert "stream-slow-0.3" in served.stub.stream_ended
    assert "".join(text) == "stub answer from stream-slow-0.3"
    assert usage is not None and usage.prompt_tokens == 12 and usage.completion_tokens == 4


def test_a_streamed_answer_is_logged_cached_and_can_be_rated(served: Served) -> None:
    client = served.client()
    with client.chat.completions.with_streaming_response.create(
        model="slow-stream", messages=CONVERSATION, stream=True
    ) as response:
        experience_id = response.headers["x-quantum-router-experience-id"]
        assert response.headers["x-quantum-router-cache"] == "miss"
        assert response.headers["content-type"].startswith("text/event-stream")
        "".join(response.iter_text())
    rated = httpx.post(
        f"{served.base_url}/feedback",
        json={"experience_id": experience_id, "rating": 5},
        headers={"Authorization": f"Bearer {served.api_key}"},
    )
    assert rated.status_code == 200, rated.text
    # The streamed answer was cached: a repeat streams it whole, without calling the upstream.
    calls = sum(served.stub.calls.values())
    chunks = list(client.chat.completions.create(model="slow-stream", messages=CONVERSATION, stream=True))
    assert sum(served.stub.calls.values()) == calls
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "stub answer from stream-slow-0.3"
    )


def test_a_stream_falls_back_before_its_first_chunk(served: Served) -> None:
    with served.client().chat.completions.with_streaming_response.create(
        model="router", messages=CONVERSATION, stream=True
    ) as response:
        assert response.headers["x-quantum-router-model"] == "instant"
        body = "".join(response.iter_text())
    assert served.stub.calls["status-400"] == 1
    assert '"content":"stub"' in body.replace(" ", "")
    # Counted as a non-streamed request with a fallback is: one failed call, one variation that answered.
    metrics = httpx.get(served.base_url.removesuffix("/v1") + "/metrics").text
    assert 'qr_provider_errors_total{model="refuses"} 1.0' in metrics
    assert 'qr_variations_total{model="instant",outcome="ok"} 1.0' in metrics
    assert 'model="refuses",outcome=' not in metrics


def test_a_stream_that_breaks_midway_ends_with_an_error_event(served: Served) -> None:
    stream = served.client().chat.completions.create(model="breaks", messages=CONVERSATION, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError, match="stream broke"):
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert received == ["stub"]


def test_an_upstream_refusal_before_the_stream_is_a_503_in_openais_shape(served: Served) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        served.client().chat.completions.create(model="refuses", messages=CONVERSATION, stream=True)
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "upstream_failed"


def test_bad_parameters_are_refused_in_openais_shape(served: Served) -> None:
    client = served.client()
    for kwargs, param in (
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"temperature": 3}, "temperature"),
        ({"logprobs": True}, "logprobs"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="router", messages=CONVERSATION, **kwargs)
        assert caught.value.body["param"] == param, kwargs
        assert caught.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-nonexistent", messages=CONVERSATION)
    with pytest.raises(openai.BadRequestError, match="role 'user'"):
        client.chat.completions.create(model="router", messages=[{"role": "system", "content": "hi"}])


def test_a_missing_or_wrong_key_is_a_401_in_openais_shape(served: Served) -> None:
    missing = httpx.post(
        f"{served.base_url}/chat/completions", json={"model": "router", "messages": CONVERSATION}
    )
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.base_url, api_key="qr_wrong_key", max_retries=0).models.list()


def test_models_lists_the_aliases_and_the_catalog(served: Served) -> None:
    ids = [m.id for m in served.client().models.list()]
    assert ids == ["router", "router-cheap", "router-best", "instant", "slow-stream", "breaks", "refuses"]


# On the simulated test fleet (tests/data/catalog.yaml), through the ASGI app.


def _chat(client: TestClient, auth: dict[str, str], model: str, **headers: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Review this module's design."}]}
    return client.post("/v1/chat/completions", json=body, headers={**auth, **headers})


def test_aliases_trade_quality_for_cost(client: TestClient, auth: dict[str, str]) -> None:
    one = {"x-quantum-router-variations": "1", "x-quantum-router-task-type": "code_analysis"}
    best = _chat(client, auth, "router-best", **one)
    cheap = _chat(client, auth, "router-cheap", **one)
    assert best.headers["x-quantum-router-model"] == "strong"
    assert cheap.headers["x-quantum-router-model"] == "cheap"


def test_persona_and_task_type_from_metadata_or_headers(client: TestClient, auth: dict[str, str]) -> None:
    body = {
        "model": "router",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"persona": "nobody"},
    }
    refused = client.post("/v1/chat/completions", json=body, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "metadata.persona"
    bad_header = _chat(client, auth, "router", **{"x-quantum-router-task-type": "poetry"})
    assert bad_header.json()["error"]["param"] == "x-quantum-router-task-type"


def test_several_variations_stream_the_best_answer_whole(client: TestClient, auth: dict[str, str]) -> None:
    body = {"model": "router", "stream": True, "messages": [{"role": "user", "content": "Design a queue."}]}
    response = client.post(
        "/v1/chat/completions", json=body, headers={**auth, "x-quantum-router-variations": "3"}
    )
    assert response.status_code == 200
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    contents = [e for e in events if '"content"' in e]
    assert len(contents) == 1
    assert float(response.headers["x-quantum-router-cost-usd"]) > 0


def test_the_policy_sees_the_last_user_message(client_factory: ClientFactory) -> None:
    client = client_factory()
    auth = login(client)
    text = "Write a Python function that reverses a list"
    via_chat = _chat_text(
        client, auth, [{"role": "user", "content": "earlier"}, {"role": "user", "content": text}]
    )
    via_execute = client.post(
        "/v1/execute",
        json={"prompt": text, "persona": "developer", "task_type": "chat", "options": {"variations": 1}},
        headers=auth,
    ).json()
    assert via_chat.headers["x-quantum-router-model"] == via_execute["model"]


def _chat_text(client: TestClient, auth: dict[str, str], messages: list[dict[str, str]]) -> httpx.Response:
    body = {"model": "router", "messages": messages}
    return client.post(
        "/v1/chat/completions", json=body, headers={**auth, "x-quantum-router-variations": "1"}
    )


def test_an_oversized_conversation_is_a_413(client_factory: ClientFactory) -> None:
    client = client_factory(max_prompt_bytes=100)
    auth = login(client)
    response = _chat_text(
        client, auth, [{"role": "user", "content": "x" * 60}, {"role": "user", "content": "y" * 60}]
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "prompt_too_large"


def test_langchain_chat_openai_works_unchanged(served: Served) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=served.base_url, api_key=served.api_key, model="instant", max_retries=0)
    assert chat.invoke("Name a colour.").content == "stub answer from instant"
    streamed = ChatOpenAI(
        base_url=served.base_url, api_key=served.api_key, model="slow-stream", max_retries=0
    )
    pieces = [chunk.content for chunk in streamed.stream("Name a colour.")]
    assert "".join(str(p) for p in pieces) == "stub answer from stream-slow-0.3"
    assert len([p for p in pieces if p]) == 4

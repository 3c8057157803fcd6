"""The {{ cookiecutter.name }} provider end to end: the openai SDK talks to a real
Portway gateway, which talks to a fake upstream that answers with scripted
OpenAI JSON and SSE (``fake_upstream``, a :class:`portway.testing.FakeUpstream`)."""

from typing import Any

import openai
import pytest

PROVIDER_TYPE = "{{ cookiecutter.name }}"

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "my-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello from upstream"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "my-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hello"}),
    chunk({"content": " from upstream"}),
    chunk({}, "stop"),
    {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000000, "model": "my-model",
     "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}},
]

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(fake_upstream: Any, gateway_server: Any) -> openai.OpenAI:
    """An openai SDK client for a gateway whose provider ``upstream`` is a
    ``{{ cookiecutter.name }}`` provider pointed at the fake upstream."""
    config = {
        "providers": {
            "upstream": {"type": PROVIDER_TYPE, "base_url": fake_upstream.url + "/v1", "api_key": "sk-test"}
        }
    }
    return gateway_server(config).openai_client()


def test_chat(client: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.json("/v1/chat/completions", COMPLETION)

    reply = client.chat.completions.create(model="upstream/my-model", messages=MESSAGES)

    assert reply.choices[0].message.content == "Hello from upstream"
    assert reply.usage is not None and reply.usage.total_tokens == 6
    sent = fake_upstream.last
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json()["model"] == "my-model"
    assert sent.json()["messages"] == MESSAGES


def test_stream(client: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.sse("/v1/chat/completions", CHUNKS, done=True)

    stream = client.chat.completions.create(model="upstream/my-model", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == "Hello from upstream"
    assert fake_upstream.last.json()["stream"] is True


def test_upstream_errors_reach_the_client_classified(client: openai.OpenAI, fake_upstream: Any) -> None:
    fake_upstream.json(
        "/v1/chat/completions",
        {"error": {"message": "slow down", "type": "rate_limit_error"}},
        status=429,
        headers={"retry-after": "7"},
    )

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="upstream/my-model", messages=MESSAGES)

    assert "slow down" in caught.value.message
    assert caught.value.response.headers["retry-after"] == "7"

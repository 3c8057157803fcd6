"""The AI21 adapter's own rules, over real sockets: the URL and auth, each
rename, drop and refusal, the answer's missing fields filled in, the usage
moved to its own chunk, and AI21's error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from portway_ai21 import AI21Provider

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider

KEY = "ai21-test-key-0123456789"
CHAT = "/studio/v1/chat/completions"
USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
COMPLETION = {"id": "chat-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                                           "logprobs": None, "finish_reason": "stop"}],
              "usage": USAGE, "meta": {"requestDurationMillis": 12}}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chat-1", "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra}


def make(base_url: str) -> AI21Provider:
    return AI21Provider("a21", ProviderConfig.model_validate({"type": "ai21", "api_key": KEY, "base_url": base_url}))


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}], **extra}


def chat(provider: AI21Provider, sent: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(sent, None))


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


@pytest.fixture
def a21(upstream: FakeUpstream) -> AI21Provider:
    return make(upstream.url + "/studio/v1")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI21_API_KEY", "env-ai21-key-42424242")
    provider = AI21Provider("ai21", ProviderConfig(type="ai21"))
    assert provider.base_url == "https://api.ai21.com/studio/v1"
    assert provider.auth_headers() == {"authorization": "Bearer env-ai21-key-42424242"}
    assert AI21Provider.env_base_url == "AI21_API_HOST"
    assert provider.models() == ["jamba-large", "jamba-mini"]


def test_request_path_auth_and_what_is_renamed_or_dropped(upstream: FakeUpstream, a21: AI21Provider) -> None:
    upstream.json(CHAT, COMPLETION)
    messages = [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                 "name": "ada"}]
    chat(a21, body(messages=messages, max_completion_tokens=64, seed=3, user="u-1", parallel_tool_calls=False,
                   tool_choice="auto", n=3, documents=[{"content": "Paris is in France."}]))
    request = upstream.last
    assert request.path == CHAT and request.headers["authorization"] == f"Bearer {KEY}"
    wire = request.json()
    assert wire["max_tokens"] == 64 and wire["n"] == 3
    assert not {"max_completion_tokens", "seed", "user", "parallel_tool_calls", "tool_choice"} & set(wire)
    assert wire["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    assert wire["documents"] == [{"content": "Paris is in France."}]  # AI21's own parameter passes


@pytest.mark.parametrize(("extra", "param"), [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": "none"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"n": 17}, "n"),
    ({"n": 2, "stream": True}, "n"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "messages[0].content[0]"),
])
def test_refused_before_sending(upstream: FakeUpstream, a21: AI21Provider, extra: dict[str, Any], param: str) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(PortwayError) as info:
        chat(a21, body(tools=tools, **extra))
    assert info.value.kind == "bad_request" and info.value.param == param
    assert upstream.requests == []


def test_answer_gets_object_created_and_model(upstream: FakeUpstream, a21: AI21Provider) -> None:
    upstream.json(CHAT, COMPLETION)
    result = chat(a21, body())
    assert (result["object"], result["model"]) == ("chat.completion", "jamba-mini")
    assert isinstance(result["created"], int)
    assert result["choices"][0]["message"]["content"] == "Hello"


def test_stream_usage_comes_on_the_finish_chunk(upstream: FakeUpstream, a21: AI21Provider) -> None:
    upstream.sse(CHAT, [chunk({"role": "assistant"}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
                        chunk({}, "stop", usage=USAGE)], done=True)

    async def collect(p: AI21Provider) -> list[dict[str, Any]]:
        return [c async for c in p.chat_stream(body(stream=True, stream_options={"include_usage": True}), None)]

    chunks = run_provider(a21, collect)
    assert "stream_options" not in upstream.last.json()
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "jamba-mini" for c in chunks)
    finish = chunks[-1]  # the gateway moves the usage to a chunk of its own (tests/test_gateway_openai.py)
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] == USAGE


def test_detail_errors(upstream: FakeUpstream, a21: AI21Provider) -> None:
    upstream.json(CHAT, {"detail": f"Invalid API key {KEY}"}, status=401)
    with pytest.raises(ProviderError) as info:
        chat(a21, body())
    assert info.value.kind == "authentication" and "Invalid API key" in info.value.message
    assert KEY not in info.value.message

    upstream.json(CHAT, {"detail": [{"loc": ["body", "messages", 0, "content"], "msg": "str type expected",
                                     "type": "type_error.str"}]}, status=422)
    with pytest.raises(ProviderError) as info:
        chat(a21, body())
    assert info.value.status == 422 and "messages.0.content: str type expected" in info.value.message


def test_no_embeddings(a21: AI21Provider) -> None:
    with pytest.raises(PortwayError) as info:
        run_provider(a21, lambda p: p.embeddings({"model": "jamba-mini", "input": "x"}, None))
    assert info.value.kind == "bad_request" and "embeddings" in info.value.message

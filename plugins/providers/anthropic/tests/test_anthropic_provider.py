"""The anthropic adapter against a fake Anthropic API on a real socket."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import portway_anthropic
from portway.errors import ProviderError
from portway.testing import FakeUpstream, Reply, collect_stream, run_provider, split_reads, sse_reply
from portway.testing.wire import ANTHROPIC_TOOL_STREAM
from portway_anthropic import AnthropicProvider

T = TypeVar("T")
KEY = "sk-ant-test"
PNG = "iVBORw0KGgo="


def run(upstream: FakeUpstream, action: Callable[[AnthropicProvider], Awaitable[T]], **config: Any) -> T:
    """Start a provider pointed at ``upstream``, run ``action``, close it."""

    settings = AnthropicProvider.config_model(type="anthropic", api_key=KEY, base_url=upstream.url, **config)
    return run_provider(AnthropicProvider("claude", settings), action)


async def collect(provider: AnthropicProvider, body: dict[str, Any]) -> list[dict[str, Any]]:
    return await collect_stream(provider, body)


def failure(upstream: FakeUpstream, action: Callable[[AnthropicProvider], Awaitable[Any]]) -> ProviderError:
    with pytest.raises(ProviderError) as err:
        run(upstream, action)
    assert KEY not in err.value.message
    return err.value


BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather where this is?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
}

MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Sunny in Paris."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 50, "output_tokens": 6, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0},
}

EVENTS = ANTHROPIC_TOOL_STREAM


def test_chat(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json("/v1/messages", MESSAGE)
    out = run(fake_upstream, lambda p: p.chat(BODY, None))

    request = fake_upstream.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers and "anthropic-beta" not in request.headers
    sent = request.json()
    assert sent["model"] == "claude-sonnet-4-5"
    assert sent["system"] == "Be terse."
    assert sent["max_tokens"] == 4096
    assert "stream" not in sent
    assert sent["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]
    assert sent["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "Weather where this is?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]

    ChatCompletion.model_validate(out)
    assert out["id"] == "msg_01" and out["model"] == "claude-sonnet-4-5-20250929"
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Sunny in Paris."}}]
    assert out["usage"] == {"prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66,
                            "prompt_tokens_details": {"cached_tokens": 10}}


def test_config_headers_and_options(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json("/v1/messages", MESSAGE)
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.3, "top_p": 0.5, "top_k": 4}
    run(fake_upstream, lambda p: p.chat(body, None), anthropic_version="2026-10-21",
        beta=["a-2025-01-01", "b-2025-02-02"], default_max_tokens=512, sampling_params=False)
    request = fake_upstream.last
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert request.headers["anthropic-beta"] == "a-2025-01-01,b-2025-02-02"
    sent = request.json()
    assert sent["max_tokens"] == 512
    assert not {"temperature", "top_p", "top_k"} & set(sent)


def test_base_url_with_v1_suffix(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json("/v1/messages", MESSAGE)

    async def action(provider: AnthropicProvider) -> None:
        await provider.close()
        provider.base_url = fake_upstream.url + "/v1"
        await provider.start()
        await provider.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, None)

    run(fake_upstream, action)
    assert fake_upstream.last.path == "/v1/messages"


def test_chat_stream(fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse("/v1/messages", EVENTS)
    chunks = run(fake_upstream, lambda p: collect(p, {**BODY, "stream": True, "stream_options": {"include_usage": True}}))

    sent = fake_upstream.last.json()
    assert sent["stream"] is True and "stream_options" not in sent
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert {c["id"] for c in chunks} == {"msg_01"} and len({c["created"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Let me check."},
        {"tool_calls": [{"index": 0, "id": "toolu_01A", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Par'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'is"}'}}]},
        {},
        None,
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 42, "total_tokens": 67,
                                   "prompt_tokens_details": {"cached_tokens": 0}}


def test_chat_stream_split_across_tcp_chunks(fake_upstream: FakeUpstream) -> None:
    """Event boundaries need not match read boundaries."""
    whole = b"".join(sse_reply(EVENTS).chunks or [])  # type: ignore[arg-type]
    with split_reads([whole[i:i + 7] for i in range(0, len(whole), 7)]) as reads:
        fake_upstream.add("/v1/messages", Reply(chunks=reads, content_type="text/event-stream"))
        chunks = run(fake_upstream, lambda p: collect(p, BODY))
    assert chunks[1]["choices"][0]["delta"] == {"content": "Let me check."}
    assert chunks[-1]["usage"]["completion_tokens"] == 42


ERROR_CASES = [
    (401, {}, "authentication_error", f"invalid x-api-key {KEY}", "authentication", None),
    (429, {"retry-after": "7"}, "rate_limit_error", "Number of requests has exceeded your rate limit", "rate_limit", "7"),
    (529, {}, "overloaded_error", "Overloaded", "overloaded", None),
    (400, {}, "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", "context_length", None),
    (413, {}, "request_too_large", "Request exceeds the maximum allowed number of bytes.", "request_too_large", None),
]


@pytest.mark.parametrize(("status", "headers", "error_type", "message", "kind", "retry_after"), ERROR_CASES)
@pytest.mark.parametrize("stream", [False, True])
def test_errors(fake_upstream: FakeUpstream, stream: bool, status: int, headers: dict[str, str], error_type: str,
                message: str, kind: str, retry_after: str | None) -> None:
    fake_upstream.json("/v1/messages", {"type": "error", "error": {"type": error_type, "message": message},
                                        "request_id": "req_1"}, status=status, headers=headers)
    error = failure(fake_upstream, (lambda p: collect(p, BODY)) if stream else (lambda p: p.chat(BODY, None)))
    assert (error.kind, error.status, error.retry_after, error.code) == (kind, status, retry_after, error_type)
    assert error.provider == "claude"
    assert message.replace(KEY, "[redacted]") in error.message


def test_mid_stream_error(fake_upstream: FakeUpstream) -> None:
    error_event = ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    fake_upstream.sse("/v1/messages", [*EVENTS[:4], error_event])
    seen: list[dict[str, Any]] = []

    async def action(provider: AnthropicProvider) -> None:
        async for chunk in provider.chat_stream(BODY, None):
            seen.append(chunk)

    error = failure(fake_upstream, action)
    assert error.kind == "overloaded" and error.code == "overloaded_error" and error.retryable
    assert "Overloaded" in error.message and error.provider == "claude"
    assert [c["choices"][0]["delta"] for c in seen] == [{"role": "assistant", "content": ""}, {"content": "Let me check."}]


def test_stream_cut_before_message_stop(fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse("/v1/messages", EVENTS[:4])
    error = failure(fake_upstream, lambda p: collect(p, BODY))
    assert error.kind == "connection"


def test_registration() -> None:
    registered: list[type] = []
    portway_anthropic.register_providers(registered.append)
    assert registered == [AnthropicProvider]
    assert portway_anthropic.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "anthropic"]
    assert [e.value for e in entry] == ["portway_anthropic"]
    assert AnthropicProvider.type == "anthropic" and AnthropicProvider.env_key == "ANTHROPIC_API_KEY"
    assert AnthropicProvider.default_base_url == "https://api.anthropic.com"


def test_embeddings_unsupported() -> None:
    provider = AnthropicProvider("claude", AnthropicProvider.config_model(type="anthropic", api_key=KEY))
    with pytest.raises(Exception) as err:
        asyncio.run(provider.embeddings({"model": "x", "input": "hi"}, None))
    assert getattr(err.value, "kind", None) == "bad_request"


def test_version_and_beta_headers_are_not_treated_as_secrets(fake_upstream: FakeUpstream) -> None:
    """Only the key is a credential: an error that quotes the API version or
    a beta flag keeps them, so the user can see what was wrong."""
    fake_upstream.json("/v1/messages", {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": f"anthropic-beta: unknown-beta-2099 is not valid with anthropic-version 2023-06-01 (key {KEY})"}},
        status=400)
    with pytest.raises(ProviderError) as caught:
        run(fake_upstream, lambda p: p.chat(BODY, None), beta=["unknown-beta-2099"])
    error = caught.value
    assert KEY not in error.message
    assert "unknown-beta-2099" in error.message and "2023-06-01" in error.message
    request = fake_upstream.last
    assert request.headers["anthropic-beta"] == "unknown-beta-2099"
    assert request.headers["anthropic-version"] == "2023-06-01"

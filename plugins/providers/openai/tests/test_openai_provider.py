"""The OpenAI adapter against a fake upstream that speaks OpenAI's exact wire
format: what it sends (path, headers, body) and how it reads answers,
streams and errors.

Adapter-level tests drive :class:`OpenAIProvider` directly with
``asyncio.run``; the few behaviours that live in the gateway's request path
(the model name rewrite, ``stream_options.include_usage`` forced upstream)
go through a real gateway.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, free_port, json_reply, run_provider, split_reads
from portway.testing.wire import OPENAI_TOOL_STREAM, openai_chunk
from portway_openai import OpenAIConfig, OpenAIProvider

KEY = "sk-test-secret-123456"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"

USAGE = {
    "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}

COMPLETION = {
    "id": "chatcmpl-A1", "object": "chat.completion", "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "service_tier": "default",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": None,
                                         "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": USAGE,
}


chunk = openai_chunk


USAGE_CHUNK = {"id": "chatcmpl-A1", "object": "chat.completion.chunk", "created": 1735689600,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "choices": [], "usage": USAGE}

STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}, obfuscation="aB3"),
    chunk({"content": "Hel"}, obfuscation="x"),
    chunk({"content": "lo"}, obfuscation="yz"),
    chunk({}, "stop"),
    USAGE_CHUNK,
]


def oai_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# -- helpers -------------------------------------------------------------------


def make_provider(base_url: str, **config: Any) -> OpenAIProvider:
    settings = OpenAIConfig.model_validate({"type": "openai", "api_key": KEY, "base_url": base_url, **config})
    return OpenAIProvider("oai", settings)


def run(provider: OpenAIProvider, action: Callable[[OpenAIProvider], Awaitable[Any]]) -> Any:
    return run_provider(provider, action)


def chat(provider: OpenAIProvider, body: dict[str, Any]) -> dict[str, Any]:
    return run(provider, lambda p: p.chat(body, None))


def stream(provider: OpenAIProvider, body: dict[str, Any]) -> tuple[list[dict[str, Any]], ProviderError | None]:
    """All chunks the adapter yielded, and the error that ended the stream (if any)."""

    async def collect(p: OpenAIProvider) -> tuple[list[dict[str, Any]], ProviderError | None]:
        chunks: list[dict[str, Any]] = []
        try:
            async for item in p.chat_stream(body, None):
                chunks.append(item)
        except ProviderError as error:
            return chunks, error
        return chunks, None

    return run(provider, collect)


def chat_error(provider: OpenAIProvider, body: dict[str, Any]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        chat(provider, body)
    return info.value


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], **extra}


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


@pytest.fixture
def oai(upstream: FakeUpstream) -> OpenAIProvider:
    return make_provider(upstream.url + "/v1")


# -- configuration -------------------------------------------------------------


def test_defaults_base_url_env_key_and_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-987654")
    provider = OpenAIProvider("openai", OpenAIConfig(type="openai"))
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.api_key == "sk-from-env-987654"
    assert provider.auth_headers() == {"authorization": "Bearer sk-from-env-987654"}
    assert {"gpt-4o-mini", "o4-mini", "gpt-5", "text-embedding-3-small"} <= set(provider.models())

    listed = OpenAIProvider("x", OpenAIConfig(type="openai", api_key="sk-k", models=["ft:gpt-4o-mini:acme::1"]))
    assert listed.models() == ["ft:gpt-4o-mini:acme::1"]
    assert listed.api_key == "sk-k"  # the config wins over the environment


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(Exception, match="organisation"):
        OpenAIConfig.model_validate({"type": "openai", "organisation": "org-typo"})


# -- the request the adapter sends -------------------------------------------------


def test_chat_request_path_auth_and_body(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, COMPLETION)
    sent = body(temperature=0.3, service_tier="flex", reasoning_effort="low", store=False,
                prompt_cache_key="tenant-7", some_future_field={"nested": [1, 2]})
    result = chat(oai, sent)

    assert result == COMPLETION  # canonical format: the answer passes through untouched
    request = upstream.last
    assert (request.method, request.path) == ("POST", CHAT)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert "openai-organization" not in request.headers and "openai-project" not in request.headers
    assert request.json() == sent  # unknown fields pass through, nothing is added


def test_organization_project_and_extra_headers(upstream: FakeUpstream) -> None:
    upstream.json(CHAT, COMPLETION)
    provider = make_provider(upstream.url + "/v1/", organization="org-abc", project="proj_123",
                             headers={"x-trace-tag": "blue"})
    chat(provider, body())
    headers = upstream.last.headers
    assert headers["openai-organization"] == "org-abc"
    assert headers["openai-project"] == "proj_123"
    assert headers["x-trace-tag"] == "blue"
    assert upstream.last.path == CHAT  # a trailing slash on base_url does not double up


@pytest.mark.parametrize("model", ["o4-mini", "o3", "o1-preview", "gpt-5", "gpt-5-mini", "gpt-5.1"])
def test_max_tokens_becomes_max_completion_tokens_for_reasoning_models(
        upstream: FakeUpstream, oai: OpenAIProvider, model: str) -> None:
    upstream.json(CHAT, COMPLETION)
    sent = body(model=model, max_tokens=256)
    chat(oai, sent)
    forwarded = upstream.last.json()
    assert "max_tokens" not in forwarded
    assert forwarded["max_completion_tokens"] == 256
    assert sent["max_tokens"] == 256 and "max_completion_tokens" not in sent  # the caller's dict is not mutated


def test_explicit_max_completion_tokens_wins_over_max_tokens(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, COMPLETION)
    chat(oai, body(model="o4-mini", max_tokens=10, max_completion_tokens=500))
    forwarded = upstream.last.json()
    assert forwarded["max_completion_tokens"] == 500 and "max_tokens" not in forwarded


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4.1", "gpt-4o"])
def test_max_tokens_kept_for_other_models(upstream: FakeUpstream, oai: OpenAIProvider, model: str) -> None:
    upstream.json(CHAT, COMPLETION)
    chat(oai, body(model=model, max_tokens=64))
    forwarded = upstream.last.json()
    assert forwarded["max_tokens"] == 64 and "max_completion_tokens" not in forwarded


def test_stream_request_and_chunks(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.sse(CHAT, STREAM, done=True)
    sent = body(stream=True, stream_options={"include_usage": True})
    chunks, error = stream(oai, sent)

    assert error is None
    assert chunks == STREAM  # every chunk as sent (obfuscation, usage: null, the usage chunk), [DONE] consumed
    assert upstream.last.path == CHAT and upstream.last.json() == sent
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert upstream.streams_finished == 1


def test_stream_framing_split_reads_and_keepalive_comments(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in STREAM[:4]) + b"data: [DONE]\n\n"
    # Cut the body at awkward places (inside a JSON value, between the two
    # newlines) and add a keep-alive comment; each piece is its own write.
    cuts = [7, 50, raw.index(b"\n\n") + 1, len(raw) // 2, len(raw) - 3]
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    with split_reads([b": keep-alive\n\n", *pieces]) as reads:
        upstream.add(CHAT, Reply(chunks=reads, content_type="text/event-stream"))
        chunks, error = stream(oai, body(stream=True))
    assert error is None
    assert chunks == STREAM[:4]


def test_stream_ends_at_done_even_if_more_follows(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.sse(CHAT, [STREAM[1], "[DONE]", STREAM[2]])
    chunks, error = stream(oai, body(stream=True))
    assert error is None and chunks == [STREAM[1]]


def test_stream_tool_call_fragments_pass_through(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    events = OPENAI_TOOL_STREAM
    upstream.sse(CHAT, events, done=True)
    chunks, error = stream(oai, body(stream=True, tools=[{"type": "function", "function": {"name": "get_weather"}}]))
    assert error is None and chunks == events


# -- errors --------------------------------------------------------------------------


def test_401_is_authentication_and_never_leaks_the_key(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, oai_error(f"Incorrect API key provided: {KEY}. You can find your API key at "
                                  "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                                  "invalid_api_key"), status=401)
    error = chat_error(oai, body())
    assert error.kind == "authentication" and error.status == 401
    assert error.code == "invalid_api_key"
    assert error.provider == "oai"
    for text in (error.message, str(error), repr(error), str(error.openai_body()), str(error.anthropic_body())):
        assert KEY not in text
        assert "sk-test-secret" not in text
    assert "Incorrect API key provided" in error.message


def test_401_on_a_stream_never_leaks_the_key(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, oai_error(f"Incorrect API key provided: {KEY}.", "invalid_request_error",
                                  "invalid_api_key"), status=401)
    chunks, error = stream(oai, body(stream=True))
    assert chunks == [] and error is not None
    assert error.kind == "authentication" and error.status == 401
    assert KEY not in error.message


def test_429_keeps_retry_after(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, oai_error("Rate limit reached for gpt-4o-mini in organization org-abc on requests per min "
                                  "(RPM): Limit 3, Used 3, Requested 1.", "requests", "rate_limit_exceeded"),
                  status=429, headers={"retry-after": "7", "x-ratelimit-remaining-requests": "0"})
    error = chat_error(oai, body())
    assert (error.kind, error.status, error.code) == ("rate_limit", 429, "rate_limit_exceeded")
    assert error.retry_after == "7"
    assert error.headers() == {"retry-after": "7"}
    assert error.retryable


def test_429_on_a_stream_keeps_retry_after(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(CHAT, oai_error("Rate limit reached", "tokens", "rate_limit_exceeded"), status=429,
                  headers={"retry-after": "3"})
    chunks, error = stream(oai, body(stream=True))
    assert chunks == [] and error is not None
    assert (error.kind, error.status, error.retry_after) == ("rate_limit", 429, "3")


@pytest.mark.parametrize(
    ("status", "payload", "kind", "code"),
    [
        (400, oai_error("This model's maximum context length is 128000 tokens. However, your messages resulted "
                        "in 130000 tokens.", "invalid_request_error", "context_length_exceeded", "messages"),
         "context_length", "context_length_exceeded"),
        (400, oai_error("Invalid value for 'temperature'.", "invalid_request_error", None, "temperature"),
         "bad_request", "invalid_request_error"),
        (403, oai_error("Country, region, or territory not supported", "request_forbidden",
                        "unsupported_country_region_territory"), "permission", "unsupported_country_region_territory"),
        (404, oai_error("The model `gpt-9` does not exist or you do not have access to it.",
                        "invalid_request_error", "model_not_found"), "not_found", "model_not_found"),
        (500, oai_error("The server had an error while processing your request. Sorry about that!",
                        "server_error"), "server_error", "server_error"),
        (503, oai_error("The engine is currently overloaded, please try again later", "server_error"),
         "overloaded", "server_error"),
    ],
)
def test_error_statuses_are_classified(upstream: FakeUpstream, oai: OpenAIProvider, status: int,
                                       payload: dict[str, Any], kind: str, code: str) -> None:
    upstream.json(CHAT, payload, status=status)
    error = chat_error(oai, body())
    assert (error.kind, error.status, error.code) == (kind, status, code)
    assert payload["error"]["message"] in error.message
    assert error.message.startswith("provider 'oai'")


def test_500_is_retryable_and_400_is_not(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.add(CHAT, json_reply(oai_error("boom", "server_error"), 500),
                 json_reply(oai_error("bad", "invalid_request_error"), 400))
    first = chat_error(oai, body())
    second = chat_error(oai, body())
    assert first.retryable and not second.retryable


def test_non_json_error_body(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.add(CHAT, Reply(status=502, body=b"<html><body>502 Bad Gateway</body></html>",
                             content_type="text/html"))
    error = chat_error(oai, body())
    assert (error.kind, error.status) == ("server_error", 502)
    assert "502 Bad Gateway" in error.message


def test_key_echoed_in_a_long_non_json_error_page_is_not_leaked(upstream: FakeUpstream) -> None:
    """A proxy's HTML error page that echoes the request headers: the key
    must not reach the client, wherever it sits in the page."""
    long_key = "sk-proj-" + "Ab3dE" * 30  # real project keys are ~160 characters
    provider = make_provider(upstream.url + "/v1", api_key=long_key)
    for offset in (20, 300, 460):
        page = "<html><pre>" + "." * (offset - 11) + long_key + "</pre></html>"
        upstream.add(CHAT, Reply(status=401, body=page.encode(), content_type="text/html"))
        error = chat_error(provider, body())
        assert error.kind == "authentication"
        assert long_key[:24] not in error.message, f"key prefix leaked with the key at offset {offset}"


def test_mid_stream_error_ends_the_stream(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.sse(CHAT, [STREAM[0], STREAM[1],
                        oai_error(f"The server had an error while processing your request (key {KEY}).",
                                  "server_error")])
    chunks, error = stream(oai, body(stream=True))
    assert chunks == STREAM[:2]
    assert error is not None
    assert error.kind == "server_error" and error.provider == "oai"
    assert "The server had an error" in error.message
    assert KEY not in error.message


def test_mid_stream_rate_limit_error_is_classified_by_code(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.sse(CHAT, [STREAM[0], oai_error("Rate limit reached", "tokens", "rate_limit_exceeded")])
    chunks, error = stream(oai, body(stream=True))
    assert chunks == STREAM[:1]
    assert error is not None and error.kind == "rate_limit" and error.code == "rate_limit_exceeded"


def test_connection_refused_is_kind_connection() -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    provider = make_provider(closed)
    error = chat_error(provider, body())
    assert error.kind == "connection" and error.status == 502 and error.retryable

    chunks, stream_error = stream(make_provider(closed), body(stream=True))
    assert chunks == [] and stream_error is not None and stream_error.kind == "connection"

    with pytest.raises(PortwayError) as info:
        run(make_provider(closed), lambda p: p.embeddings({"model": "text-embedding-3-small", "input": "x"}, None))
    assert info.value.kind == "connection"


def test_read_timeout_is_kind_timeout(upstream: FakeUpstream) -> None:
    upstream.sse(CHAT, [STREAM[0], STREAM[1], STREAM[2]], delay=1.0)
    provider = make_provider(upstream.url + "/v1", timeout=0.2)
    chunks, error = stream(provider, body(stream=True))
    assert chunks == STREAM[:1]
    assert error is not None and error.kind == "timeout"

    error = chat_error(make_provider(upstream.url + "/v1", timeout=0.2), body())
    assert error.kind == "timeout" and error.status == 504


# -- embeddings ------------------------------------------------------------------------


def embedding_response(vectors: list[Any]) -> dict[str, Any]:
    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}}


def test_embeddings_float(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    answer = embedding_response([[0.25, -0.5, 0.125], [1.0, 0.0, -1.0]])
    upstream.json(EMBED, answer)
    sent = {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 3,
            "user": "u-1"}
    result = run(oai, lambda p: p.embeddings(sent, None))
    assert result == answer
    assert upstream.last.path == EMBED and upstream.last.json() == sent
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"


def test_embeddings_base64_passthrough(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    vector = [0.5, -0.25, 0.75, 0.0]
    encoded = base64.b64encode(struct.pack("<4f", *vector)).decode()
    answer = embedding_response([encoded])
    upstream.json(EMBED, answer)
    sent = {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}
    result = run(oai, lambda p: p.embeddings(sent, None))
    assert result["data"][0]["embedding"] == encoded  # not decoded: the client asked for base64
    assert list(struct.unpack("<4f", base64.b64decode(result["data"][0]["embedding"]))) == vector
    assert upstream.last.json()["encoding_format"] == "base64"


def test_embeddings_error(upstream: FakeUpstream, oai: OpenAIProvider) -> None:
    upstream.json(EMBED, oai_error(f"Incorrect API key provided: {KEY}", "invalid_request_error",
                                   "invalid_api_key"), status=401)
    with pytest.raises(ProviderError) as info:
        run(oai, lambda p: p.embeddings({"model": "text-embedding-3-small", "input": "x"}, None))
    assert info.value.kind == "authentication" and KEY not in info.value.message


# -- through a gateway: what the request path adds ------------------------------------------


def gateway_config(upstream: FakeUpstream, **provider: Any) -> dict[str, Any]:
    return {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1", **provider}},
            "models": {"fast": {"target": {"provider": "oai", "model": "gpt-4o-mini"}},
                       "thinker": {"target": {"provider": "oai", "model": "o4-mini"}}}}


def test_gateway_rewrites_model_and_uses_its_own_key(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(CHAT, COMPLETION)
    gateway = gateway_server(gateway_config(upstream))
    client = gateway.openai_client(api_key="client-key-should-not-go-upstream")
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="oai/gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="thinker", messages=[{"role": "user", "content": "hi"}], max_tokens=9)
    models = [r.json()["model"] for r in upstream.requests]
    assert models == ["gpt-4o-mini", "gpt-4.1", "o4-mini"]
    for request in upstream.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert "client-key-should-not-go-upstream" not in str(request.headers)
    assert upstream.requests[2].json()["max_completion_tokens"] == 9
    assert "max_tokens" not in upstream.requests[2].json()


@pytest.mark.parametrize("client_options", [None, {"include_usage": False}, {"include_usage": True}])
def test_gateway_forces_include_usage_upstream(upstream: FakeUpstream, gateway_server: Any,
                                               client_options: dict[str, Any] | None) -> None:
    upstream.sse(CHAT, STREAM, done=True)
    gateway = gateway_server(gateway_config(upstream))
    payload: dict[str, Any] = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if client_options is not None:
        payload["stream_options"] = client_options
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=payload, timeout=10) as response:
        assert response.status_code == 200
        text = response.read().decode()
    sent = upstream.last.json()
    assert sent["stream_options"]["include_usage"] is True
    assert sent["stream"] is True
    assert text.endswith("data: [DONE]\n\n")
    has_usage_chunk = '"choices":[]' in text
    assert has_usage_chunk == bool(client_options and client_options["include_usage"])


def test_gateway_keeps_other_stream_options(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.sse(CHAT, STREAM, done=True)
    gateway = gateway_server(gateway_config(upstream))
    payload = {"model": "fast", "stream": True, "messages": [{"role": "user", "content": "hi"}],
               "stream_options": {"include_obfuscation": False}}
    httpx.post(gateway.base_url + "/chat/completions", json=payload, timeout=10).raise_for_status()
    assert upstream.last.json()["stream_options"] == {"include_obfuscation": False, "include_usage": True}

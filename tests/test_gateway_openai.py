"""The official ``openai`` SDK driving a real gateway, in front of a fake
OpenAI upstream (the ``openai`` provider) and the ``mock`` provider.

Everything goes over real sockets: SDK -> gateway (uvicorn) -> fake upstream
(uvicorn).  Each test that scripts the upstream gets fresh servers; the
mock-only tests share one gateway per module (it holds no state between
requests).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from portway.testing import FakeUpstream, free_port, json_reply
from portway.testing.gateway import GatewayServer
from portway.testing.wire import OPENAI_TOOL_STREAM, openai_chunk

KEY = "sk-test-secret-123456"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
HI = [{"role": "user", "content": "Say hello"}]

USAGE = {
    "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
}


def completion(content: str | None = "Hello there", *, tool_calls: list[dict[str, Any]] | None = None,
               finish: str = "stop") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-A1", "object": "chat.completion", "created": 1735689600,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "service_tier": "default",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": USAGE}


chunk = openai_chunk


USAGE_CHUNK = {"id": "chatcmpl-A1", "object": "chat.completion.chunk", "created": 1735689600,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1", "choices": [], "usage": USAGE}

TEXT_STREAM = [chunk({"role": "assistant", "content": "", "refusal": None}), chunk({"content": "Hel"}),
               chunk({"content": "lo"}), chunk({}, "stop"), USAGE_CHUNK]

TOOL_STREAM = [*OPENAI_TOOL_STREAM, USAGE_CHUNK]

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                "required": ["city"]}},
}

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
       "RU5ErkJggg==")


def oai_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def config(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"},
                      "mock": {"type": "mock"}},
        "models": {"fast": {"target": {"provider": "oai", "model": "gpt-4o-mini"}},
                   "embed": {"target": {"provider": "oai", "model": "text-embedding-3-small"}},
                   "echo": {"target": {"provider": "mock", "model": "echo"}}},
        **extra,
    }


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


@pytest.fixture
def gw(upstream: FakeUpstream, gateway_server: Any) -> GatewayServer:
    return gateway_server(config(upstream))


@pytest.fixture
def client(gw: GatewayServer) -> openai.OpenAI:
    return gw.openai_client()


@pytest.fixture(scope="module")
def mock_gw() -> Iterator[GatewayServer]:
    cfg = {"providers": {"mock": {"type": "mock"}},
           "models": {"echo": {"target": {"provider": "mock", "model": "echo"}}}}
    with GatewayServer(cfg) as server:
        yield server


@pytest.fixture
def mock_client(mock_gw: GatewayServer) -> openai.OpenAI:
    return mock_gw.openai_client()


@pytest.fixture(scope="module")
def rejecting() -> Iterator[tuple[GatewayServer, FakeUpstream]]:
    """A gateway whose upstream must never be called: for requests that are
    rejected up front.  Shared by the module; tests compare request counts."""
    with FakeUpstream() as upstream, GatewayServer(config(upstream)) as server:
        yield server, upstream


def sent(upstream: FakeUpstream, *, model: str = "gpt-4o-mini", stream: bool = False, path: str = CHAT,
         key: str = KEY) -> dict[str, Any]:
    """What the upstream received last, checked: the path, the provider's own
    key (never the client's), the upstream model name, and the stream flag
    with the usage the gateway always asks for on a stream."""
    request = upstream.last
    assert request.path == path and request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {key}"
    body = request.json()
    assert body["model"] == model
    assert body.get("stream", False) is stream
    if stream:
        assert body["stream_options"] == {"include_usage": True}
    return body


def collect(stream: Any) -> list[Any]:
    return list(stream)


def joined(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- non-stream ------------------------------------------------------------------------------


def test_chat_via_openai_provider(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion())
    reply = client.chat.completions.create(model="fast", messages=HI)
    assert reply.id == "chatcmpl-A1" and reply.system_fingerprint == "fp_1"
    assert reply.choices[0].message.content == "Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.total_tokens == 11
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0
    sent = upstream.last.json()
    assert sent == {"model": "gpt-4o-mini", "messages": HI}
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"


def test_chat_via_mock(mock_client: openai.OpenAI) -> None:
    for model in ("echo", "mock/echo"):
        reply = mock_client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi there"}])
        assert reply.choices[0].message.content == "Mock reply to: hi there"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None and reply.usage.total_tokens == 2 + 5


# -- streams -----------------------------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_via_openai_provider(client: openai.OpenAI, upstream: FakeUpstream, include_usage: bool) -> None:
    upstream.sse(CHAT, TEXT_STREAM, done=True)
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = collect(client.chat.completions.create(model="fast", messages=HI, stream=True, **options))

    assert joined(chunks) == "Hello"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert upstream.last.json()["stream_options"] == {"include_usage": True}
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens == 11
        assert all(c.usage is None for c in chunks[:-1])
    else:
        assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
        assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize("include_usage", [False, True])
def test_usage_on_the_finish_chunk_reaches_the_client_as_openai_sends_it(
        client: openai.OpenAI, upstream: FakeUpstream, include_usage: bool) -> None:
    # Mistral, AI21, Groq and Fireworks put the usage on the chunk that carries the finish_reason.
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    upstream.sse(CHAT, [openai_chunk({"role": "assistant", "content": "Hi"}),
                        openai_chunk({}, "stop", usage=usage)], done=True)
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = collect(client.chat.completions.create(model="fast", messages=HI, stream=True, **options))
    assert joined(chunks) == "Hi" and [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 9
        assert all(c.usage is None for c in chunks[:-1]) and len(chunks) == 3
    else:
        assert all(c.choices and c.usage is None for c in chunks) and len(chunks) == 2


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_via_mock(mock_client: openai.OpenAI, include_usage: bool) -> None:
    messages = [{"role": "user", "content": "tell me about the river otter"}]
    whole = mock_client.chat.completions.create(model="echo", messages=messages)
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = collect(mock_client.chat.completions.create(model="echo", messages=messages, stream=True, **options))
    assert joined(chunks) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
        assert whole.usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    else:
        assert usage_chunks == [] and all(c.choices for c in chunks)


def test_stream_wire_framing(gw: GatewayServer, upstream: FakeUpstream) -> None:
    upstream.sse(CHAT, TEXT_STREAM, done=True)
    payload = {"model": "fast", "messages": HI, "stream": True}
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=payload, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-portway-provider"] == "oai"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: {") and "\n" not in event
        assert "usage" not in json.loads(event[len("data: "):])
    assert len(events) - 2 == 4  # 4 chunks with choices; the usage chunk was held back
    assert sent(upstream, stream=True)["messages"] == HI


# -- tools --------------------------------------------------------------------------------------


def test_tool_call_round_trip_via_openai_provider(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    call = {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
    upstream.add(CHAT, json_reply(completion(None, tool_calls=[call], finish="tool_calls")),
                 json_reply(completion("It is sunny in Paris.")))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="fast", messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="required", parallel_tool_calls=False)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    [made] = choice.message.tool_calls
    assert made.id == "call_abc" and made.function.name == "get_weather"
    assert json.loads(made.function.arguments) == {"city": "Paris"}
    sent = upstream.requests[0].json()
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False

    messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp_c\": 18}"}]
    second = client.chat.completions.create(model="fast", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert upstream.requests[1].json()["messages"] == messages  # the tool turn reaches upstream untouched


def test_tool_call_stream_via_openai_provider_with_sdk_helper(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.sse(CHAT, TOOL_STREAM, done=True)
    with client.chat.completions.stream(model="fast", messages=[{"role": "user", "content": "Weather?"}],
                                        tools=[WEATHER_TOOL]) as stream:
        events = [event for event in stream]
        final = stream.get_final_completion()
    done = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert len(done) == 1 and done[0].name == "get_weather" and done[0].arguments == "{\"city\":\"Paris\"}"
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].id == "call_abc"
    assert choice.message.tool_calls[0].function.arguments == "{\"city\":\"Paris\"}"
    body = sent(upstream, stream=True)
    assert body["tools"] == [WEATHER_TOOL] and body["messages"] == [{"role": "user", "content": "Weather?"}]


def test_tool_loop_streamed_via_mock(mock_client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    chunks = collect(mock_client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL],
                                                         stream=True))
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for delta in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += delta.id or ""
            if delta.function is not None:
                slot["name"] += delta.function.name or ""
                slot["arguments"] += delta.function.arguments or ""
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert list(calls) == [0]
    call = calls[0]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "mock"}

    whole = mock_client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL])
    assert whole.choices[0].message.tool_calls is not None
    assert whole.choices[0].message.tool_calls[0].id == call["id"]
    assert whole.choices[0].message.tool_calls[0].function.arguments == call["arguments"]

    messages += [{"role": "assistant", "content": None,
                  "tool_calls": [{"id": call["id"], "type": "function",
                                  "function": {"name": call["name"], "arguments": call["arguments"]}}]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    final = collect(mock_client.chat.completions.create(model="echo", messages=messages, tools=[WEATHER_TOOL],
                                                        stream=True))
    assert joined(final) == "Mock result for: sunny"
    assert [c.choices[0].finish_reason for c in final if c.choices][-1] == "stop"


# -- images, JSON mode, passthrough ------------------------------------------------------------------


def test_image_parts_pass_through_untouched(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion("Two cats."))
    content: Any = [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/images/cat.jpg?size=large&v=2",
                                            "detail": "high"}},
    ]
    messages: Any = [{"role": "user", "content": content}]
    client.chat.completions.create(model="fast", messages=messages)
    assert upstream.last.json()["messages"] == messages


def test_image_parts_via_mock(mock_client: openai.OpenAI) -> None:
    content: Any = [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    reply = mock_client.chat.completions.create(model="echo", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == "Mock reply to: Describe [2 image(s)]"


def test_json_object_mode(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion("{\"greeting\": \"hello\"}"))
    reply = client.chat.completions.create(model="fast", messages=HI, response_format={"type": "json_object"})
    assert json.loads(reply.choices[0].message.content or "") == {"greeting": "hello"}
    assert upstream.last.json()["response_format"] == {"type": "json_object"}

    mocked = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hey"}],
                                            response_format={"type": "json_object"})
    assert json.loads(mocked.choices[0].message.content or "") == {"reply": "hey"}


class Person(BaseModel):
    name: str
    age: int
    hobbies: list[str]
    active: bool
    mood: Literal["happy", "sad"]


def test_json_schema_with_pydantic_parse_via_openai_provider(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion(json.dumps({"name": "Ada", "age": 36, "hobbies": ["math"], "active": True,
                                               "mood": "happy"})))
    reply = client.chat.completions.parse(model="fast", messages=HI, response_format=Person)
    assert reply.choices[0].message.parsed == Person(name="Ada", age=36, hobbies=["math"], active=True, mood="happy")
    fmt = upstream.last.json()["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Person" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert set(schema["properties"]) == {"name", "age", "hobbies", "active", "mood"}
    assert schema["additionalProperties"] is False


def test_json_schema_with_pydantic_parse_via_mock(mock_client: openai.OpenAI) -> None:
    reply = mock_client.chat.completions.parse(model="echo", messages=HI, response_format=Person)
    assert reply.choices[0].message.parsed == Person(name="mock", age=1, hobbies=["mock"], active=True, mood="happy")


def test_sampling_and_metadata_fields_pass_through(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    def logprobs(token: str) -> dict[str, Any]:
        entry = {"token": token, "logprob": -0.01, "bytes": list(token.encode())}
        return {"content": [{**entry, "top_logprobs": [entry, {"token": "Yo", "logprob": -5.0, "bytes": [89, 111]}]}],
                "refusal": None}

    answer = completion("Hi")
    answer["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": None},
         "logprobs": logprobs("Hi"), "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": "Hey", "refusal": None},
         "logprobs": logprobs("Hey"), "finish_reason": "stop"},
    ]
    upstream.json(CHAT, answer)
    reply = client.chat.completions.create(
        model="fast", messages=HI, n=2, seed=42, stop=["\n\n", "END"], logprobs=True, top_logprobs=2,
        user="user-1234", metadata={"tenant": "acme", "run": "7"}, temperature=0.2, top_p=0.9,
        presence_penalty=0.5, frequency_penalty=-0.5, logit_bias={"50256": -100},
        extra_body={"service_tier": "flex", "future_param": {"x": [1, 2]}},
    )
    sent = upstream.last.json()
    expected = {"n": 2, "seed": 42, "stop": ["\n\n", "END"], "logprobs": True, "top_logprobs": 2,
                "user": "user-1234", "metadata": {"tenant": "acme", "run": "7"}, "temperature": 0.2, "top_p": 0.9,
                "presence_penalty": 0.5, "frequency_penalty": -0.5, "logit_bias": {"50256": -100},
                "service_tier": "flex", "future_param": {"x": [1, 2]}}
    assert {k: sent.get(k) for k in expected} == expected
    assert [c.message.content for c in reply.choices] == ["Hi", "Hey"]
    first = reply.choices[0].logprobs
    assert first is not None and first.content is not None
    assert first.content[0].token == "Hi" and [t.token for t in first.content[0].top_logprobs] == ["Hi", "Yo"]


# -- response headers ----------------------------------------------------------------------------


def test_route_headers(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, completion())
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=HI)
    assert raw.headers["x-request-id"].startswith("req_") and len(raw.headers["x-request-id"]) > 10
    assert raw.headers["x-portway-provider"] == "oai"
    assert raw.headers["x-portway-model"] == "gpt-4o-mini"
    assert raw.parse().choices[0].message.content == "Hello there"
    assert "x-request-id" not in upstream.last.headers  # the gateway's id is its own, not sent upstream
    assert sent(upstream)["messages"] == HI

    again = client.chat.completions.with_raw_response.create(model="fast", messages=HI)
    assert again.headers["x-request-id"] != raw.headers["x-request-id"]

    mine = client.chat.completions.with_raw_response.create(model="echo", messages=HI,
                                                            extra_headers={"x-request-id": "trace-abc-1"})
    assert mine.headers["x-request-id"] == "trace-abc-1"
    assert (mine.headers["x-portway-provider"], mine.headers["x-portway-model"]) == ("mock", "echo")


def test_route_headers_on_streams(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.sse(CHAT, TEXT_STREAM, done=True)
    with client.chat.completions.with_streaming_response.create(model="oai/gpt-4.1", messages=HI,
                                                                stream=True) as response:
        assert response.headers["x-portway-provider"] == "oai"
        assert response.headers["x-portway-model"] == "gpt-4.1"
        assert response.headers["x-request-id"].startswith("req_")
        assert joined(list(response.parse())) == "Hello"
    sent(upstream, model="gpt-4.1", stream=True)


# -- upstream errors -------------------------------------------------------------------------------


def assert_no_key(response: httpx.Response | Any) -> None:
    assert KEY not in response.text
    assert KEY not in str(dict(response.headers))
    assert "sk-test-secret" not in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_401_is_authentication_error_without_the_key(client: openai.OpenAI, upstream: FakeUpstream,
                                                              stream: bool) -> None:
    upstream.json(CHAT, oai_error(f"Incorrect API key provided: {KEY}. You can find your API key at "
                                  "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                                  "invalid_api_key"), status=401)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="fast", messages=HI, stream=stream)
    error = info.value
    assert error.status_code == 401
    assert_no_key(error.response)
    assert KEY not in str(error) and KEY not in str(error.body)
    body = error.response.json()["error"]
    assert body["type"] == "authentication_error" and body["code"] == "invalid_api_key"
    assert error.response.headers["x-portway-provider"] == "oai"
    sent(upstream, stream=stream)


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_429_is_rate_limit_error_with_retry_after(client: openai.OpenAI, upstream: FakeUpstream,
                                                           stream: bool) -> None:
    upstream.json(CHAT, oai_error("Rate limit reached for gpt-4o-mini on requests per min (RPM)", "requests",
                                  "rate_limit_exceeded"), status=429, headers={"retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="fast", messages=HI, stream=stream)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.response.json()["error"]["type"] == "rate_limit_error"
    assert len(upstream.requests) == 1  # no gateway retries unless configured


def test_upstream_500_is_internal_server_error(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.json(CHAT, oai_error("The server had an error while processing your request.", "server_error"),
                  status=500)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fast", messages=HI)
    assert info.value.status_code == 500
    assert "The server had an error" in info.value.response.json()["error"]["message"]
    assert info.value.response.json()["error"]["type"] == "api_error"
    assert len(upstream.requests) == 1  # no retries configured
    sent(upstream)


@pytest.mark.parametrize("status", [529, 503])
def test_upstream_overload_status_is_kept(client: openai.OpenAI, upstream: FakeUpstream, status: int) -> None:
    upstream.json(CHAT, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                  status=status)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fast", messages=HI)
    assert info.value.status_code == status
    assert info.value.response.json()["error"]["type"] == "overloaded_error"
    assert "Overloaded" in info.value.response.json()["error"]["message"]
    assert len(upstream.requests) == 1
    sent(upstream)


def test_unreachable_upstream_is_502_naming_the_provider(gateway_server: Any) -> None:
    """Every other provider failure says which provider failed (message
    prefix and ``x-portway-provider``); a refused connection should too."""
    cfg = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": f"http://127.0.0.1:{free_port()}/v1"}}}
    client = gateway_server(cfg).openai_client()
    for stream in (False, True):
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI, stream=stream)
        assert info.value.status_code == 502
        assert info.value.response.json()["error"]["type"] == "api_error"
        assert info.value.response.headers.get("x-portway-provider") == "oai"
        assert "oai" in info.value.response.json()["error"]["message"]


@pytest.mark.parametrize(("model", "exc", "status"), [
    ("mock/error-429", openai.RateLimitError, 429), ("mock/error-500", openai.InternalServerError, 500),
    ("mock/error-401", openai.AuthenticationError, 401), ("mock/error-529", openai.InternalServerError, 529),
])
def test_mock_error_models_through_the_sdk(mock_client: openai.OpenAI, model: str, exc: type[Exception],
                                           status: int) -> None:
    for stream in (False, True):
        with pytest.raises(exc) as info:
            mock_client.chat.completions.create(model=model, messages=HI, stream=stream)
        assert info.value.status_code == status  # type: ignore[attr-defined]
    if status == 429:
        assert info.value.response.headers["retry-after"] == "1"  # type: ignore[attr-defined]


def test_mid_stream_error_reaches_the_sdk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.sse(CHAT, [TEXT_STREAM[0], TEXT_STREAM[1],
                        oai_error(f"The server had an error processing your request ({KEY}).", "server_error")])
    received: list[Any] = []
    with pytest.raises(openai.APIError) as info:
        for item in client.chat.completions.create(model="fast", messages=HI, stream=True):
            received.append(item)
    assert joined(received) == "Hel"
    assert "The server had an error" in info.value.message
    assert KEY not in info.value.message and KEY not in str(info.value.body)
    sent(upstream, stream=True)


# -- request validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "param"), [
    ({"messages": [{"role": "user", "content": 123}]}, "messages[0].content"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    ({"temperature": 3}, "temperature"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"n": 0}, "n"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
])
def test_validation_errors_name_the_field(rejecting: tuple[GatewayServer, FakeUpstream],
                                          overrides: dict[str, Any], param: str) -> None:
    server, upstream = rejecting
    before = len(upstream.requests)
    kwargs: dict[str, Any] = {"model": "fast", "messages": HI, **overrides}
    with pytest.raises(openai.BadRequestError) as info:
        server.openai_client().chat.completions.create(**kwargs)
    error = info.value.response.json()["error"]
    assert info.value.status_code == 400
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]
    assert len(upstream.requests) == before  # rejected before any provider is called


def test_embeddings_validation(rejecting: tuple[GatewayServer, FakeUpstream]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        rejecting[0].openai_client().embeddings.create(model="embed", input="")
    assert info.value.response.json()["error"]["param"] == "input"


@pytest.mark.parametrize(("raw", "says"), [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    (b'{"model": "fast", "messages": [', "not valid JSON"),
])
def test_invalid_json_body_is_a_400_in_openai_shape(rejecting: tuple[GatewayServer, FakeUpstream], raw: bytes,
                                                    says: str) -> None:
    response = httpx.post(rejecting[0].base_url + "/chat/completions", content=raw,
                          headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert says in body["error"]["message"]


@pytest.mark.parametrize("model", ["no-such-alias", "nobody/gpt-4o", "gpt-4o"])
def test_unknown_model_is_404_model_not_found(rejecting: tuple[GatewayServer, FakeUpstream], model: str) -> None:
    server, upstream = rejecting
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as info:
        server.openai_client().chat.completions.create(model=model, messages=HI)
    error = info.value.response.json()["error"]
    assert info.value.status_code == 404
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "fast" in error["message"]  # it tells the client what it can use
    assert len(upstream.requests) == before


# -- retries and fallback --------------------------------------------------------------------------------


def rate_limited(retry_after: str = "0", header: str = "retry-after") -> Any:
    return json_reply(oai_error("Rate limit reached", "requests", "rate_limit_exceeded"), 429, {header: retry_after})


@pytest.mark.parametrize("where", ["routing", "model"])
def test_retry_after_429(upstream: FakeUpstream, gateway_server: Any, where: str) -> None:
    upstream.add(CHAT, rate_limited(), json_reply(completion("second time lucky")))
    cfg = config(upstream, routing={"retry": {"attempts": 2 if where == "routing" else 1, "backoff": {"initial": 0}}})
    if where == "model":
        cfg["models"]["fast"]["retry"] = {"attempts": 2}
    client = gateway_server(cfg).openai_client()
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=HI)
    reply = raw.parse()
    assert reply.choices[0].message.content == "second time lucky"
    assert raw.headers["x-portway-attempts"] == "2"
    assert "x-portway-fallback" not in raw.headers  # a retry on the same target is not a fallback
    assert len(upstream.requests) == 2
    assert upstream.requests[0].json() == upstream.requests[1].json()


def test_retry_before_the_first_chunk_of_a_stream(upstream: FakeUpstream, gateway_server: Any) -> None:
    from portway.testing import sse_reply

    upstream.add(CHAT, rate_limited(), sse_reply(TEXT_STREAM, done=True))
    client = gateway_server(config(upstream, routing={"retry": {"attempts": 2, "backoff": {"initial": 0}}})).openai_client()
    assert joined(collect(client.chat.completions.create(model="fast", messages=HI, stream=True))) == "Hello"
    assert len(upstream.requests) == 2


def test_no_retry_without_config_and_none_for_auth_errors(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.add(CHAT, rate_limited(), json_reply(completion()))
    client = gateway_server(config(upstream)).openai_client()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fast", messages=HI)
    assert len(upstream.requests) == 1

    upstream.requests.clear()
    upstream.json(CHAT, oai_error("bad key", "invalid_request_error", "invalid_api_key"), status=401)
    retrying = gateway_server(config(upstream, routing={"retry": {"attempts": 4, "backoff": {"initial": 0}}})).openai_client()
    with pytest.raises(openai.AuthenticationError):
        retrying.chat.completions.create(model="fast", messages=HI)
    assert len(upstream.requests) == 1  # another attempt would fail the same way


def fallback_config(upstream: FakeUpstream, bad_url: str | None = None) -> dict[str, Any]:
    return {
        "providers": {"bad": {"type": "openai", "api_key": "sk-bad-000000", "base_url": bad_url or upstream.url + "/bad/v1"},
                      "good": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
        "models": {"smart": {"targets": [{"provider": "bad", "model": "gpt-4o"},
                                         {"provider": "good", "model": "gpt-4o-mini"}]}},
        "routing": {"retry": {"attempts": 1, "backoff": {"initial": 0}}},
    }


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_to_the_next_target(upstream: FakeUpstream, gateway_server: Any, stream: bool) -> None:
    upstream.json("/bad/v1/chat/completions", oai_error("The server had an error", "server_error"), status=500)
    if stream:
        upstream.sse(CHAT, TEXT_STREAM, done=True)
    else:
        upstream.json(CHAT, completion("from good"))
    client = gateway_server(fallback_config(upstream)).openai_client()
    with client.chat.completions.with_streaming_response.create(model="smart", messages=HI, stream=stream) as raw:
        assert raw.headers["x-portway-provider"] == "good"
        assert raw.headers["x-portway-model"] == "gpt-4o-mini"
        assert raw.headers["x-portway-attempts"] == "2"
        assert raw.headers["x-portway-fallback"] == "bad/gpt-4o: server_error 500"
        result = raw.parse()
        text = joined(list(result)) if stream else result.choices[0].message.content
    assert text == ("Hello" if stream else "from good")
    assert [r.path for r in upstream.requests] == ["/bad/v1/chat/completions", CHAT]
    assert [r.json()["model"] for r in upstream.requests] == ["gpt-4o", "gpt-4o-mini"]


def test_fallback_when_the_first_target_is_unreachable(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(CHAT, completion("from good"))
    cfg = fallback_config(upstream, bad_url=f"http://127.0.0.1:{free_port()}/v1")
    raw = gateway_server(cfg).openai_client().chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert raw.headers["x-portway-provider"] == "good"
    assert raw.headers["x-portway-fallback"].startswith("bad/gpt-4o: connection")
    assert raw.parse().choices[0].message.content == "from good"
    assert len(upstream.requests) == 1
    sent(upstream)


def test_no_fallback_for_a_bad_request(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json("/bad/v1/chat/completions", oai_error("Invalid 'messages'", "invalid_request_error", None,
                                                        "messages"), status=400)
    upstream.json(CHAT, completion("from good"))
    client = gateway_server(fallback_config(upstream)).openai_client()
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="smart", messages=HI)
    assert info.value.response.headers["x-portway-provider"] == "bad"
    assert info.value.response.headers["x-portway-attempts"] == "1"
    assert "x-portway-fallback" not in info.value.response.headers  # no fallback happened
    assert [r.path for r in upstream.requests] == ["/bad/v1/chat/completions"]


def test_all_targets_failing_returns_the_last_error(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json("/bad/v1/chat/completions", oai_error("boom", "server_error"), status=500)
    upstream.json(CHAT, oai_error("slow down", "requests", "rate_limit_exceeded"), status=429,
                  headers={"retry-after": "2"})
    client = gateway_server(fallback_config(upstream)).openai_client()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="smart", messages=HI)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["x-portway-provider"] == "good"
    assert len(upstream.requests) == 2


# -- client disconnect ----------------------------------------------------------------------------------


def test_client_disconnect_mid_stream_closes_the_upstream(gw: GatewayServer, upstream: FakeUpstream) -> None:
    events = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": f"word{i} "}) for i in range(20)]
    upstream.sse(CHAT, events, delay=0.2, done=True)
    payload = {"model": "fast", "messages": HI, "stream": True}
    received = []
    with httpx.Client(timeout=10) as http, http.stream("POST", gw.base_url + "/chat/completions",
                                                       json=payload) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 2:
                break
    assert len(received) == 2
    assert upstream.disconnected.wait(5), "the gateway kept reading from the upstream after the client left"
    assert upstream.streams_finished == 0


def test_client_disconnect_before_the_first_chunk_closes_the_upstream(gw: GatewayServer,
                                                                      upstream: FakeUpstream) -> None:
    """A reasoning model can think for a long time before its first token; a
    client that gives up meanwhile must not keep the upstream generating."""
    keepalives = [b": processing\n\n"] * 15  # 3 s of keep-alives before the first token
    upstream.sse(CHAT, [*keepalives, chunk({"content": "late"})], delay=0.2, done=True)
    payload = {"model": "fast", "messages": HI, "stream": True}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(gw.base_url + "/chat/completions", json=payload, timeout=0.4)
    assert upstream.disconnected.wait(1.5), "the upstream kept generating after the client left"


# -- models and embeddings ---------------------------------------------------------------------------------


def test_models_list(client: openai.OpenAI) -> None:
    models = list(client.models.list())
    ids = [m.id for m in models]
    assert {"fast", "embed", "echo"} <= set(ids)
    assert {"oai/gpt-4o-mini", "oai/o4-mini", "oai/text-embedding-3-small", "mock/echo", "mock/error-429"} <= set(ids)
    assert ids.index("fast") < ids.index("oai/gpt-4o-mini")  # aliases first
    owners = {m.id: m.owned_by for m in models}
    assert owners["fast"] == "portway" and owners["oai/gpt-4o"] == "oai" and owners["mock/echo"] == "mock"
    assert all(m.object == "model" and m.created > 0 for m in models)
    assert len(ids) == len(set(ids))


def test_embeddings_via_mock_default_base64_matches_float(mock_client: openai.OpenAI) -> None:
    default = mock_client.embeddings.create(model="mock/embed", input=["alpha", "beta"])  # SDK asks for base64
    floats = mock_client.embeddings.create(model="mock/embed", input=["alpha", "beta"], encoding_format="float")
    assert len(default.data) == 2
    for a, b in zip(default.data, floats.data, strict=True):
        assert isinstance(a.embedding, list) and len(a.embedding) == 8
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert default.data[0].embedding != default.data[1].embedding
    assert default.usage.total_tokens == 2


def test_embeddings_via_openai_provider(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    vector = [0.5, -0.25, 0.75, 0.0]
    encoded = base64.b64encode(struct.pack("<4f", *vector)).decode()
    upstream.json(EMBED, {"object": "list", "model": "text-embedding-3-small",
                          "data": [{"object": "embedding", "index": 0, "embedding": encoded}],
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    raw = client.embeddings.with_raw_response.create(model="embed", input="hello")
    result = raw.parse()
    assert result.data[0].embedding == vector
    assert raw.headers["x-portway-provider"] == "oai" and raw.headers["x-portway-model"] == "text-embedding-3-small"
    sent = upstream.last.json()
    assert upstream.last.path == EMBED
    assert sent == {"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"}

    upstream.json(EMBED, {"object": "list", "model": "text-embedding-3-small",
                          "data": [{"object": "embedding", "index": 0, "embedding": vector}],
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    as_floats = client.embeddings.create(model="embed", input=["hello"], encoding_format="float", dimensions=4)
    assert as_floats.data[0].embedding == vector
    assert upstream.last.json() == {"model": "text-embedding-3-small", "input": ["hello"], "encoding_format": "float",
                                    "dimensions": 4}


def test_embedded_defaults_add_providers_whose_key_variable_is_set(fake_upstream: FakeUpstream) -> None:
    """No config file: the mock provider, plus each installed provider whose
    standard key variable is set, named after its type."""
    fake_upstream.json("/v1/chat/completions", {
        "id": "chatcmpl-env", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from env"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})

    environ = {"OPENAI_API_KEY": "sk-from-env-123456", "OPENAI_BASE_URL": fake_upstream.url + "/v1"}
    with GatewayServer(auto_providers=True, environ=environ) as gw:
        assert set(gw.gateway.providers) == {"mock", "openai"}  # ANTHROPIC_API_KEY is not set
        reply = gw.openai_client().chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "from env"
    assert fake_upstream.last.headers["authorization"] == "Bearer sk-from-env-123456"


def test_an_upstream_error_names_the_provider_and_model_it_came_from() -> None:
    with GatewayServer({"providers": {"mock": {"type": "mock"}}}) as gw:
        response = httpx.post(gw.url + "/v1/chat/completions", json={
            "model": "mock/error-500", "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 500
    assert response.headers["x-portway-provider"] == "mock"
    assert response.headers["x-portway-model"] == "error-500"
    assert response.headers["x-request-id"].startswith("req_")


# -- what the routing config does, proved on the wire -------------------------------------------------


def test_retries_back_off_exponentially(upstream: FakeUpstream, gateway_server: Any) -> None:
    """Lower bounds only (a sleep never ends early): with jitter, a retry waits
    between half and all of its backoff, so the first at least 0.2 s of 0.4 s,
    the second at least 0.4 s of 0.8 s."""
    upstream.add(CHAT, rate_limited(), rate_limited(), json_reply(completion("third time")))
    client = gateway_server(config(upstream, routing={"retry": {"attempts": 3, "backoff": {"initial": "400ms"}}})
                            ).openai_client()
    assert client.chat.completions.create(model="fast", messages=HI).choices[0].message.content == "third time"
    first, second, third = (r.at for r in upstream.requests)
    assert second - first >= 0.19
    assert third - second >= 0.39


@pytest.mark.parametrize(("header", "value"), [("retry-after", "1"), ("retry-after-ms", "1000")])
def test_a_retry_waits_at_least_what_the_upstream_asked(upstream: FakeUpstream, gateway_server: Any,
                                                         header: str, value: str) -> None:
    upstream.add(CHAT, rate_limited(value, header), json_reply(completion("after the wait")))
    client = gateway_server(config(upstream, routing={"retry": {"attempts": 2, "backoff": {"initial": 0}}})
                            ).openai_client()
    assert client.chat.completions.create(model="fast", messages=HI).choices[0].message.content == "after the wait"
    first, second = (r.at for r in upstream.requests)
    assert second - first >= 0.99


def test_a_longer_wait_than_backoff_max_falls_back_instead(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.add("/bad/v1/chat/completions", rate_limited("30"))
    upstream.json(CHAT, completion("from good"))
    cfg = fallback_config(upstream)
    cfg["routing"] = {"retry": {"attempts": 3, "backoff": {"initial": 0, "max": "5s"}}}
    raw = gateway_server(cfg).openai_client().chat.completions.with_raw_response.create(model="smart", messages=HI)
    assert raw.parse().choices[0].message.content == "from good"
    assert [r.path for r in upstream.requests] == ["/bad/v1/chat/completions", CHAT]  # no retry of 30 s on "bad"
    assert raw.headers["x-portway-fallback"] == "bad/gpt-4o: rate_limit 429"


def test_only_the_listed_statuses_are_retried(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.add(CHAT, json_reply(oai_error("boom", "server_error"), 500), json_reply(completion("second")))
    cfg = config(upstream, routing={"retry": {"attempts": 3, "on_status": [429], "backoff": {"initial": 0}}})
    with pytest.raises(openai.InternalServerError):
        gateway_server(cfg).openai_client().chat.completions.create(model="fast", messages=HI)
    assert len(upstream.requests) == 1
    upstream.reset()
    upstream.add(CHAT, json_reply(oai_error("boom", "server_error"), 500), json_reply(completion("second")))
    cfg["models"]["fast"]["retry"] = {"on_status": [500]}  # the alias's list, its attempts from routing.retry
    reply = gateway_server(cfg).openai_client().chat.completions.create(model="fast", messages=HI)
    assert reply.choices[0].message.content == "second" and len(upstream.requests) == 2


def test_target_params_are_added_unless_the_client_set_them(upstream: FakeUpstream, gateway_server: Any) -> None:
    upstream.json(CHAT, completion())
    cfg = config(upstream)
    cfg["models"]["tuned"] = {"target": {"provider": "oai", "model": "gpt-4o-mini",
                                         "params": {"temperature": 0.2, "seed": 7, "user": "portway"}}}
    client = gateway_server(cfg).openai_client()
    client.chat.completions.create(model="tuned", messages=HI)
    sent = upstream.last.json()
    assert (sent["temperature"], sent["seed"], sent["user"]) == (0.2, 7, "portway")
    client.chat.completions.create(model="tuned", messages=HI, temperature=1.5, seed=1)
    sent = upstream.last.json()
    assert (sent["temperature"], sent["seed"], sent["user"]) == (1.5, 1, "portway")  # the client's values win
    client.chat.completions.create(model="fast", messages=HI)
    assert "seed" not in upstream.last.json()  # another alias: none of them

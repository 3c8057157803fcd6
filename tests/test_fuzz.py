"""Property-based fuzzing of both directions, through a real gateway:
mutated client bodies on every endpoint, and hostile upstream answers to
every adapter.  Whatever comes in, the gateway answers in the client's API
shape: a 4xx for the client's mistakes, a classified upstream error for the
upstream's (a 502/503/504 of the gateway's, or the provider's own 5xx passed
on, naming the provider), a 200 stream that ends in an error event — never
the gateway's own 500, and never a traceback in the log.

Bounded (a few hundred examples) and derandomized, so CI sees the same
cases every run; ``PORTWAY_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`` to
search harder locally (with a random seed).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portway.testing import FakeUpstream, Reply, json_reply, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.wire import ANTHROPIC_TOOL_STREAM, openai_chunk

EXAMPLES = int(os.environ.get("PORTWAY_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(max_examples=EXAMPLES or 150, deadline=None, derandomize=EXAMPLES is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

KEY = "sk-fuzz-upstream-0123456789"

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "w",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                  "role": "assistant", "content": "hi", "tool_calls": [
                      {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                        "prompt_tokens_details": {"cached_tokens": 0}}}
CHUNKS = [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "Hel"}),
          openai_chunk({"tool_calls": [{"index": 0, "id": "c", "type": "function",
                                        "function": {"name": "f", "arguments": "{}"}}]}),
          openai_chunk({}, "stop"),
          {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
           "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}]
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
           "content": [{"type": "text", "text": "hi"}, {"type": "thinking", "thinking": "t", "signature": "s"},
                       {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
           "stop_reason": "tool_use", "stop_sequence": None,
           "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 1}}
EMBEDDINGS = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
              "model": "e", "usage": {"prompt_tokens": 1, "total_tokens": 1}}

OPENAI_BODY = {"model": "mock/echo", "messages": [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "hi"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"x\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
], "tools": [WEATHER], "tool_choice": "auto", "max_tokens": 20, "temperature": 0.5, "stop": ["zz"],
    "response_format": {"type": "json_object"}, "stream": False, "stream_options": {"include_usage": True}}
ANTHROPIC_BODY = {"model": "mock/echo", "max_tokens": 20, "system": [{"type": "text", "text": "be brief"}],
                  "messages": [
                      {"role": "user", "content": [
                          {"type": "text", "text": "hi"},
                          {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                       "data": "iVBORw0KGgo="}}]},
                      {"role": "assistant", "content": [
                          {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "x"}}]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "ok"}]}]},
                  ],
                  "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                  "tool_choice": {"type": "auto"}, "stop_sequences": ["zz"], "temperature": 0.5,
                  "thinking": {"type": "enabled", "budget_tokens": 1024}, "output_config": {"effort": "high"},
                  "metadata": {"user_id": "u"}, "stream": False}
EMBED_BODY = {"model": "mock/embed", "input": ["a", "b"], "dimensions": 8, "encoding_format": "float"}

# -- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, template: Any, mutations: int = 3) -> Any:
    """``template`` with a few values replaced by arbitrary JSON, keys
    dropped, or keys added."""
    value = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, mutations))):
        paths = [p for p in _paths(value) if p]
        if not paths:
            return draw(json_values)
        path = draw(st.sampled_from(paths))
        parent = value
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return value


def _event(value: Any) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


@st.composite
def openai_streams(draw: st.DrawFn) -> list[bytes]:
    events = [_event(draw(mutated(chunk, 1)) if draw(st.booleans()) else chunk) for chunk in CHUNKS]
    extras = draw(st.lists(st.one_of(
        st.builds(_event, json_values), st.binary(max_size=40), st.just(b"data: [DONE]\n\n"),
        st.just(b": keep-alive\n\n"), st.just(b"\xef\xbb\xbf"), st.just(b"event: \xff\xfe\ndata: {}\n\n"),
        st.just(b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'),
    ), max_size=3))
    for extra in extras:
        events.insert(draw(st.integers(0, len(events))), extra)
    if draw(st.booleans()):
        events.append(b"data: [DONE]\n\n")
    cut = draw(st.integers(0, len(events)))
    return events[:cut] if draw(st.booleans()) else events


def _named(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@st.composite
def anthropic_streams(draw: st.DrawFn) -> list[bytes]:
    events = [_named(name, draw(mutated(data, 1)) if draw(st.integers(0, 4)) == 0 else data)
              for name, data in ANTHROPIC_TOOL_STREAM]
    extras = draw(st.lists(st.one_of(
        st.builds(_named, st.sampled_from(["content_block_delta", "message_delta", "error", "future_event"]),
                  json_values),
        st.binary(max_size=40), st.just(b"event: error\ndata: {\"type\": \"error\"}\n\n"),
    ), max_size=2))
    for extra in extras:
        events.insert(draw(st.integers(0, len(events))), extra)
    cut = draw(st.integers(0, len(events)))
    return events[:cut] if draw(st.booleans()) else events


STATUSES = [200, 200, 200, 201, 301, 307, 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529]


@st.composite
def hostile_replies(draw: st.DrawFn, format: str, streamed: bool) -> Reply:
    status = draw(st.sampled_from(STATUSES))
    kind = draw(st.sampled_from(["shaped", "shaped", "json", "bytes"]))
    content_type = draw(st.sampled_from(["application/json", "text/event-stream", "text/html"]))
    if streamed and kind == "shaped":
        events = draw(openai_streams() if format == "openai" else anthropic_streams())
        return Reply(status=status, chunks=events, content_type=content_type)
    if kind == "shaped":
        template = {"openai": COMPLETION, "anthropic": MESSAGE, "embeddings": EMBEDDINGS}[format]
        return Reply(status=status, body=json.dumps(draw(mutated(template))).encode())
    if kind == "json":
        return Reply(status=status, body=json.dumps(draw(json_values)).encode(), content_type=content_type)
    return Reply(status=status, body=draw(st.binary(max_size=200)), content_type=content_type)


# -- the gateway under test ---------------------------------------------------------------------


class Script:
    """The fake upstream's next answer, set by each example."""

    def __init__(self) -> None:
        self.reply: Reply = json_reply(COMPLETION)

    def __call__(self, request: Any) -> Reply:
        return self.reply


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[GatewayServer, Script]]:
    script = Script()
    with FakeUpstream() as upstream:
        for path in ("/v1/chat/completions", "/v1/embeddings", "/v1/messages"):
            upstream.add(path, script)
        config = {"server": {"max_body_bytes": 1024 * 1024},
                  "providers": {"mock": {"type": "mock"},
                                "oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1",
                                        "timeout": 5},
                                "claude": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url,
                                           "timeout": 5}},
                  # Each case must reach the upstream: a breaker would open after a few bad answers.
                  "routing": {"breaker": {"enabled": False}}}
        with GatewayServer(config) as server:
            yield server, script


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    with caplog.at_level(logging.WARNING):
        yield caplog.records


def check(response: httpx.Response, client_format: str, records: list[logging.LogRecord]) -> None:
    status = response.status_code
    if status >= 500:
        # Only an upstream's failure, classified and naming its provider (the provider's own 500 or 529
        # is passed on as it came); never the gateway's own "internal error".
        assert response.headers.get("x-portway-provider") in {"oai", "claude", "mock"}, (status, response.text[:300])
        assert "internal error" not in response.text
    if status >= 400:
        body = response.json()
        if client_format == "anthropic":
            assert body["type"] == "error" and isinstance(body["error"]["message"], str), body
        else:
            assert isinstance(body["error"]["message"], str), body
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        text = response.text
        assert "internal error" not in text, text[-300:]
    else:
        response.json()
    crashed = [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    assert not crashed, [r.getMessage() for r in crashed]
    assert KEY not in response.text


def post(server: GatewayServer, path: str, body: Any) -> httpx.Response:
    return httpx.post(server.url + path, content=json.dumps(body), timeout=30,
                      headers={"content-type": "application/json"})


MODELS = ["mock/echo", "mock/tools", "oai/gpt-4o", "claude/claude-sonnet-4-5"]


@FUZZ
@given(data=st.data())
def test_any_client_body_gets_an_answer_in_its_shape(fuzzed: Any, tracebacks: list[logging.LogRecord],
                                                     data: st.DataObject) -> None:
    server, script = fuzzed
    path, template, client_format = data.draw(st.sampled_from([
        ("/v1/chat/completions", OPENAI_BODY, "openai"), ("/v1/messages", ANTHROPIC_BODY, "anthropic"),
        ("/v1/embeddings", EMBED_BODY, "openai")]))
    body = data.draw(mutated(template))
    if isinstance(body, dict) and data.draw(st.booleans()):
        body["model"] = data.draw(st.sampled_from(MODELS))
    streamed = isinstance(body, dict) and body.get("stream") is True
    if isinstance(body, dict) and str(body.get("model", "")).startswith("claude/"):
        script.reply = sse_reply(ANTHROPIC_TOOL_STREAM) if streamed else json_reply(MESSAGE)
    elif path == "/v1/embeddings":
        script.reply = json_reply(EMBEDDINGS)
    else:
        script.reply = sse_reply(CHUNKS, done=True) if streamed else json_reply(COMPLETION)
    check(post(server, path, body), client_format, tracebacks)


@FUZZ
@given(data=st.data())
def test_any_upstream_answer_becomes_a_classified_answer(fuzzed: Any, tracebacks: list[logging.LogRecord],
                                                         data: st.DataObject) -> None:
    server, script = fuzzed
    adapter, path, client_format = data.draw(st.sampled_from([
        ("openai", "/v1/chat/completions", "openai"), ("anthropic", "/v1/chat/completions", "openai"),
        ("openai", "/v1/messages", "anthropic"), ("anthropic", "/v1/messages", "anthropic"),
        ("embeddings", "/v1/embeddings", "openai")]))
    streamed = adapter != "embeddings" and data.draw(st.booleans())
    script.reply = data.draw(hostile_replies(adapter, streamed))
    model = {"openai": "oai/gpt-4o", "anthropic": "claude/claude-sonnet-4-5", "embeddings": "oai/e"}[adapter]
    if path == "/v1/embeddings":
        body: dict[str, Any] = {"model": model, "input": "x"}
    elif path == "/v1/messages":
        body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "stream": streamed}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": streamed}
    check(post(server, path, body), client_format, tracebacks)

"""The cohere adapter against a fake Cohere v2 API on a real socket
(:mod:`portway_cohere.testing`): the body it sends for each canonical field,
how it reads answers, typed stream events and errors, embeddings, and the
whole path through a gateway with the official SDKs as clients."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import portway_cohere
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from portway_cohere import CohereConfig, CohereProvider
from portway_cohere.testing import CohereAPI, stream_events

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Gate, Reply, json_reply, run_provider, split_reads, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.openai_chat import vector_of
from portway.testing.script import call, relevance, say

T = TypeVar("T")
KEY = "co-test-key-0123456789abcdef"
PNG = "data:image/png;base64,iVBORw0KGgo="
HI = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def run(upstream: FakeUpstream, action: Callable[[CohereProvider], Awaitable[T]], **config: Any) -> T:
    settings = CohereConfig.model_validate({"type": "cohere", "api_key": KEY, "base_url": upstream.url, **config})
    return run_provider(CohereProvider("co", settings), action)


def fake(upstream: FakeUpstream, *steps: Any) -> CohereAPI:
    return CohereAPI(list(steps), api_key=KEY).install(upstream)


def chat(upstream: FakeUpstream, body: dict[str, Any], ctx: Any = None, **config: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.chat(body, ctx), **config)


def stream(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    async def collect(p: CohereProvider) -> list[dict[str, Any]]:
        return [chunk async for chunk in p.chat_stream({**body, "stream": True}, None)]

    chunks = run(upstream, collect, **config)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def failure(upstream: FakeUpstream, action: Callable[[CohereProvider], Awaitable[Any]]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action)
    assert KEY not in caught.value.message
    return caught.value


def refused(body: dict[str, Any], upstream: FakeUpstream) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        chat(upstream, body)
    assert caught.value.kind == "bad_request" and upstream.requests == []
    return caught.value


async def _drain(p: CohereProvider) -> None:
    async for _ in p.chat_stream({"model": "m", "messages": HI, "stream": True}, None):
        pass


def text_of(chunks: list[dict[str, Any]], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


# -- configuration --------------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", "cohere-env-key-0123")
    provider = CohereProvider("co", CohereConfig(type="cohere"))
    assert provider.base_url == "https://api.cohere.com"
    assert provider.auth_headers() == {"authorization": "Bearer cohere-env-key-0123"}  # the second variable
    monkeypatch.setenv("CO_API_KEY", "co-env-key-0123456")
    assert CohereProvider("co", CohereConfig(type="cohere")).api_key == "co-env-key-0123456"  # CO_API_KEY first
    assert CohereProvider("co", CohereConfig(type="cohere", base_url="https://api.cohere.ai/v1/")).base_url == \
        "https://api.cohere.ai"
    assert {"command-a-03-2025", "embed-v4.0"} <= set(provider.models())
    assert provider.settings.embed_input_type == "search_document"


def test_config_is_checked() -> None:
    with pytest.raises(Exception, match="embed_input_types"):
        CohereConfig.model_validate({"type": "cohere", "embed_input_types": "search_query"})
    with pytest.raises(Exception, match="embed_input_type"):
        CohereConfig.model_validate({"type": "cohere", "embed_input_type": "query"})


def test_registration() -> None:
    registered: list[type] = []
    portway_cohere.register_providers(registered.append)
    assert registered == [CohereProvider] and portway_cohere.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "cohere"]
    assert [e.value for e in entry] == ["portway_cohere"]


# -- the request ----------------------------------------------------------------------------


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                                           "strict": True}},
         {"type": "function", "function": {"name": "get_time"}}]

CONVERSATION = [
    {"role": "system", "content": "Be terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                 {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                                 {"type": "image_url", "image_url": {"url": "https://example.com/city.jpg"}}]},
    {"role": "assistant", "content": None, "reasoning_content": "I will look up the weather.", "tool_calls": [
        {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "get_time_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
    {"role": "tool", "tool_call_id": "get_weather_1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "get_time_2", "content": [{"type": "text", "text": "noon"}]},
]


def test_every_canonical_field_is_mapped_or_dropped(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("Sunny, 21 degrees."))
    chat(upstream, {
        "model": "command-a-03-2025", "messages": CONVERSATION, "tools": TOOLS, "tool_choice": "required",
        "temperature": 0.4, "top_p": 0.9, "seed": 42, "max_completion_tokens": 300, "max_tokens": 100, "stop": "END",
        "frequency_penalty": 0.1, "presence_penalty": 0.2, "n": 1,
        # dropped: no Cohere form
        "logprobs": True, "top_logprobs": 2, "logit_bias": {"1": 2}, "user": "u-1", "metadata": {"a": "b"},
        "parallel_tool_calls": False, "service_tier": "auto", "store": False, "reasoning_effort": "low",
        # Cohere's own, passed through
        "k": 40, "safety_mode": "STRICT", "priority": 1,
    })
    sent = upstream.last.json()
    assert (upstream.last.path, upstream.last.headers["authorization"]) == ("/v2/chat", f"Bearer {KEY}")
    assert not api.refusals and len(api.calls) == 1
    assert sent["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "system", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "Weather here?"},
                                     {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/city.jpg"}}]},
        {"role": "assistant", "tool_plan": "I will look up the weather.", "tool_calls": [
            {"id": "get_weather_1", "type": "function", "function": {"name": "get_weather",
                                                                     "arguments": '{"city":"Paris"}'}},
            {"id": "get_time_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "get_weather_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "get_time_2", "content": "noon"},
    ]
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
    assert {k: v for k, v in sent.items() if k not in ("messages", "tools")} == {
        "model": "command-a-03-2025", "tool_choice": "REQUIRED", "strict_tools": True, "temperature": 0.4,
        "p": 0.9, "seed": 42, "max_tokens": 300, "stop_sequences": ["END"], "frequency_penalty": 0.1,
        "presence_penalty": 0.2, "k": 40, "safety_mode": "STRICT", "priority": 1}


@pytest.mark.parametrize(("top_p", "p"), [(1.0, 0.99), (0.0, 0.01), (0.5, 0.5)])
def test_top_p_is_clamped_into_cohere_range(upstream: FakeUpstream, top_p: float, p: float) -> None:
    api = fake(upstream, say("ok"))
    chat(upstream, {"model": "command-a-03-2025", "messages": HI, "top_p": top_p})
    assert upstream.last.json()["p"] == p and not api.refusals


@pytest.mark.parametrize(("choice", "tool_choice", "tools"), [
    ("none", "NONE", ["get_weather", "get_time"]),
    ("auto", None, ["get_weather", "get_time"]),
    ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
])
def test_tool_choice(upstream: FakeUpstream, choice: Any, tool_choice: str | None, tools: list[str]) -> None:
    api = fake(upstream, say("ok"))
    chat(upstream, {"model": "command-a-03-2025", "messages": HI, "tools": TOOLS, "tool_choice": choice})
    sent = upstream.last.json()
    assert sent.get("tool_choice") == tool_choice
    assert [t["function"]["name"] for t in sent["tools"]] == tools
    assert not api.refusals


@pytest.mark.parametrize(("response_format", "sent"), [
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}},
     {"type": "json_object", "json_schema": {"type": "object"}}),
    ({"type": "text"}, None),
])
def test_response_format(upstream: FakeUpstream, response_format: dict[str, Any], sent: Any) -> None:
    api = fake(upstream, say('{"a": 1}'))
    chat(upstream, {"model": "command-a-03-2025", "messages": HI, "response_format": response_format})
    assert upstream.last.json().get("response_format") == sent and not api.refusals


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "input_audio",
                                                 "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
     "messages[0].content[1]"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"modalities": ["text", "audio"]}, "modalities"),
])
def test_what_cohere_cannot_express_is_refused_naming_the_field(upstream: FakeUpstream, extra: dict[str, Any],
                                                                param: str) -> None:
    error = refused({"model": "command-a-03-2025", "messages": HI, **extra}, upstream)
    assert error.param == param and error.status == 400


# -- whole answers ----------------------------------------------------------------------------


def test_text_answer(upstream: FakeUpstream) -> None:
    fake(upstream, say("Hello there", input_tokens=7, output_tokens=3))
    result = chat(upstream, {"model": "command-a-03-2025", "messages": HI})
    ChatCompletion.model_validate(result)
    assert result["model"] == "command-a-03-2025" and result["id"]
    assert result["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                                    "finish_reason": "stop", "logprobs": None}
    assert result["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}  # usage.tokens


def test_tool_call_answer(upstream: FakeUpstream) -> None:
    fake(upstream, call("get_weather", {"city": "Paris"}, text="I will check the weather."))
    result = chat(upstream, {"model": "command-a-03-2025", "messages": HI, "tools": TOOLS})
    ChatCompletion.model_validate(result)
    message = result["choices"][0]["message"]
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] is None and message["reasoning_content"] == "I will check the weather."
    assert message["tool_calls"] == [{"id": message["tool_calls"][0]["id"], "type": "function",
                                      "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]


def test_thinking_citations_billed_units_and_cache(upstream: FakeUpstream) -> None:
    citation = {"start": 0, "end": 5, "text": "Sunny", "type": "TEXT_CONTENT",
                "sources": [{"type": "tool", "id": "get_weather_1:0", "tool_output": {"temp": 21}}]}
    upstream.json("/v2/chat", {"id": "c1", "finish_reason": "COMPLETE", "message": {
        "role": "assistant", "content": [{"type": "thinking", "thinking": "The tool said 21."},
                                         {"type": "text", "text": "Sunny"}], "citations": [citation]},
        "usage": {"billed_units": {"input_tokens": 5.0, "output_tokens": 2}, "cached_tokens": 3}})
    message = chat(upstream, {"model": "command-a-reasoning-08-2025", "messages": HI})["choices"][0]["message"]
    assert message["reasoning_content"] == "The tool said 21." and message["content"] == "Sunny"
    assert message["citations"] == [citation]
    result = chat(upstream, {"model": "command-a-reasoning-08-2025", "messages": HI})
    assert result["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                               "prompt_tokens_details": {"cached_tokens": 3}}


@pytest.mark.parametrize(("reason", "finish"), [("MAX_TOKENS", "length"), ("STOP_SEQUENCE", "stop"),
                                                ("COMPLETE", "stop"), ("SOMETHING_NEW", "stop")])
def test_finish_reasons(upstream: FakeUpstream, reason: str, finish: str) -> None:
    upstream.json("/v2/chat", {"id": "c1", "finish_reason": reason,
                               "message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]}})
    assert chat(upstream, {"model": "m", "messages": HI})["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(("reason", "kind", "status"), [("ERROR", "server_error", 502), ("TIMEOUT", "timeout", 504)])
def test_failed_answers_are_errors(upstream: FakeUpstream, reason: str, kind: str, status: int) -> None:
    upstream.json("/v2/chat", {"id": "c1", "finish_reason": reason, "message": {"role": "assistant"}})
    error = failure(upstream, lambda p: p.chat({"model": "m", "messages": HI}, None))
    assert (error.kind, error.status, error.provider) == (kind, status, "co")
    assert reason in error.message


@pytest.mark.parametrize("answer", [
    {"id": "c1", "finish_reason": "COMPLETE", "message": {"content": [{"type": "text", "text": 5}]}},
    {"id": "c1", "finish_reason": "COMPLETE", "message": {}, "usage": {"tokens": {"input_tokens": "12"}}},
    {"id": "c1", "finish_reason": "COMPLETE", "message": {}, "usage": {"billed_units": {"output_tokens": 2.5}}},
    {"id": "c1", "message": {}},
    {"id": "c1", "finish_reason": "TOOL_CALL", "message": {"tool_calls": [{"function": {"name": "f"}}]}},
])
def test_malformed_answers(upstream: FakeUpstream, answer: dict[str, Any]) -> None:
    upstream.json("/v2/chat", answer)
    error = failure(upstream, lambda p: p.chat({"model": "m", "messages": HI}, None))
    assert (error.kind, error.status) == ("server_error", 502) and "malformed" in error.message


# -- streams -------------------------------------------------------------------------------------


def test_text_stream(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("Hello there", input_tokens=4, output_tokens=2))
    chunks = stream(upstream, {"model": "command-a-03-2025", "messages": HI})
    assert upstream.last.json()["stream"] is True and len(api.calls) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["Hello ", "there"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 6
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"]


def test_tool_call_stream(upstream: FakeUpstream) -> None:
    fake(upstream, lambda seen: call("get_weather", {"city": "Paris"}, text="Checking.", id="get_weather_7"))
    chunks = stream(upstream, {"model": "command-a-03-2025", "messages": HI, "tools": TOOLS})
    assert text_of(chunks, "reasoning_content") == "Checking." and text_of(chunks) == ""
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0] == {"index": 0, "id": "get_weather_7", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert len(calls) == 3 and all(tc["index"] == 0 for tc in calls)  # the arguments, in two deltas
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"city":"Paris"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_is_translated_as_it_arrives(fake_upstream: FakeUpstream) -> None:
    """The first text is handed on while the upstream still holds the rest."""
    upstream = fake_upstream  # a fresh one: this test counts finished streams
    gate = Gate()
    events = list(stream_events({"id": "c1", "finish_reason": "COMPLETE", "usage": None,
                                 "message": {"content": [{"type": "text", "text": "Hello there"}]}}))
    upstream.add("/v2/chat", sse_reply([*events[:3], gate, *events[3:]]))
    seen_before_the_rest: list[str] = []

    async def read(p: CohereProvider) -> list[dict[str, Any]]:
        chunks = []
        async for chunk in p.chat_stream({"model": "m", "messages": HI, "stream": True}, None):
            chunks.append(chunk)
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content") == "Hello ":
                gate.wait_reached()
                seen_before_the_rest.append(str(upstream.streams_finished))
                gate.open()
        return chunks

    chunks = run(upstream, read)
    assert seen_before_the_rest == ["0"] and text_of(chunks) == "Hello there"


def test_stream_split_across_reads(upstream: FakeUpstream) -> None:
    events = list(stream_events({"id": "c1", "finish_reason": "COMPLETE", "usage": None,
                                 "message": {"content": [{"type": "text", "text": "Hi there"}]}}))
    body = sse_reply(events).chunks
    raw = b"".join(c for c in body or () if isinstance(c, bytes))
    cut = raw.index(b'"text":"Hi') + 5  # inside an event's JSON
    with split_reads([raw[:cut], raw[cut:]]) as pieces:
        upstream.add("/v2/chat", Reply(chunks=pieces, content_type="text/event-stream"))
        chunks = stream(upstream, {"model": "m", "messages": HI})
    assert text_of(chunks) == "Hi there" and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_other_events_are_passed_over(upstream: FakeUpstream) -> None:
    events = list(stream_events({"id": "c1", "finish_reason": "COMPLETE", "usage": None,
                                 "message": {"content": [{"type": "text", "text": "Yes"}]}}))
    extra = [("citation-start", {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
                 "start": 0, "end": 3, "text": "Yes", "sources": []}}}}),
             ("citation-end", {"type": "citation-end", "index": 0}),
             ("debug", {"type": "debug", "prompt": "..."}),
             ("future-event", {"type": "future-event", "anything": [1]})]
    upstream.sse("/v2/chat", [*events[:-1], *extra, events[-1], "[DONE]"])
    chunks = stream(upstream, {"model": "m", "messages": HI})
    assert text_of(chunks) == "Yes" and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_cut_before_message_end(upstream: FakeUpstream) -> None:
    events = list(stream_events({"id": "c1", "finish_reason": "COMPLETE", "usage": None,
                                 "message": {"content": [{"type": "text", "text": "Hello there"}]}}))
    upstream.sse("/v2/chat", events[:-1])
    error = failure(upstream, _drain)
    assert error.kind == "connection"


def test_stream_that_fails_in_message_end(upstream: FakeUpstream) -> None:
    upstream.sse("/v2/chat", [("message-start", {"type": "message-start", "id": "c1"}),
                              ("message-end", {"type": "message-end", "delta": {
                                  "finish_reason": "ERROR", "error": f"internal failure (key {KEY})"}})])
    error = failure(upstream, _drain)
    assert (error.kind, error.provider) == ("server_error", "co") and "internal failure" in error.message


@pytest.mark.parametrize(("event", "reason"), [
    ({"index": 0, "delta": {"message": {"content": {"text": "x"}}}}, "type"),
    ({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": ["x"]}}}}, "text"),
    ({"type": "tool-call-delta", "index": 3, "delta": {"message": {"tool_calls": {"function": {"arguments": "{"}}}}},
     "did not start"),
])
def test_malformed_stream_event(upstream: FakeUpstream, event: dict[str, Any], reason: str) -> None:
    upstream.sse("/v2/chat", [("message-start", {"type": "message-start", "id": "c1"}), ("x", event)])
    error = failure(upstream, _drain)
    assert (error.kind, error.status) == ("server_error", 502) and reason in error.message


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "headers", "kind", "retry_after"), [
    (400, {}, "bad_request", None),
    (401, {}, "authentication", None),
    (498, {}, "authentication", None),
    (404, {}, "not_found", None),
    (429, {"retry-after": "7"}, "rate_limit", "7"),
    (429, {"retry-after-ms": "250"}, "rate_limit", "1"),
    (500, {}, "server_error", None),
    (503, {}, "overloaded", None),
])
def test_errors(upstream: FakeUpstream, status: int, headers: dict[str, str], kind: str,
                retry_after: str | None) -> None:
    upstream.json("/v2/chat", {"id": "e1", "message": f"something went wrong with key {KEY}"}, status=status,
                  headers=headers)
    error = failure(upstream, lambda p: p.chat({"model": "m", "messages": HI}, None))
    assert (error.status, error.kind, error.retry_after) == (status, kind, retry_after)
    assert "something went wrong" in error.message and "[redacted]" in error.message


def test_wrong_key_is_an_authentication_error(upstream: FakeUpstream) -> None:
    CohereAPI([say("never")], api_key="another-key-0123456789").install(upstream)
    error = failure(upstream, _drain)
    assert (error.status, error.kind) == (401, "authentication") and "invalid api token" in error.message


# -- embeddings ----------------------------------------------------------------------------------


def test_embeddings(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = run(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": ["a", "b"], "dimensions": 256,
                                                  "user": "u-1", "truncate": "END"}, None))
    assert upstream.last.path == "/v2/embed" and not api.refusals
    assert upstream.last.json() == {"model": "embed-v4.0", "texts": ["a", "b"], "input_type": "search_document",
                                    "embedding_types": ["float"], "output_dimension": 256, "truncate": "END"}
    assert result == {"object": "list", "model": "embed-v4.0", "usage": {"prompt_tokens": 4, "total_tokens": 4},
                      "data": [{"object": "embedding", "index": 0, "embedding": vector_of("a")},
                               {"object": "embedding", "index": 1, "embedding": vector_of("b")}]}


def test_base64_embeddings_are_float32_as_openai_encodes_them(upstream: FakeUpstream) -> None:
    fake(upstream)
    result = run(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": "a", "encoding_format": "base64"},
                                                  None))
    assert upstream.last.json()["embedding_types"] == ["float"]
    encoded = result["data"][0]["embedding"]
    assert struct.unpack("<8f", base64.b64decode(encoded)) == pytest.approx(vector_of("a"), abs=1e-6)


def test_embedding_input_type_and_types(upstream: FakeUpstream) -> None:
    fake(upstream)
    run(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": "q"}, None), embed_input_type="search_query")
    assert upstream.last.json()["input_type"] == "search_query"
    result = run(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": "q", "input_type": "clustering",
                                                  "embedding_types": ["int8"]}, None))
    assert upstream.last.json()["input_type"] == "clustering" and upstream.last.json()["embedding_types"] == ["int8"]
    assert result["data"][0]["embedding"] == [round(v * 100) for v in vector_of("q")]


@pytest.mark.parametrize(("extra", "param"), [
    ({"input": [[1, 2, 3]]}, "input"),
    ({"input_type": "query"}, "input_type"),
    ({"embedding_types": ["int8", "float"]}, "embedding_types"),
    ({"embedding_types": ["int8"], "encoding_format": "base64"}, "encoding_format"),
])
def test_embedding_refusals(upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(PortwayError) as caught:
        run(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": "x", **extra}, None))
    assert (caught.value.kind, caught.value.param) == ("bad_request", param) and upstream.requests == []


def test_embeddings_with_too_few_vectors_are_malformed(upstream: FakeUpstream) -> None:
    upstream.add("/v2/embed", json_reply({"id": "e", "embeddings": {"float": [[0.1]]}, "meta": {}}))
    error = failure(upstream, lambda p: p.embeddings({"model": "embed-v4.0", "input": ["a", "b"]}, None))
    assert (error.kind, error.status) == ("server_error", 502)


# -- through a gateway, with the SDKs as clients ---------------------------------------------------


def test_through_the_gateway_with_both_sdks(upstream: FakeUpstream) -> None:
    api = fake(upstream, call("get_weather", {"city": "Paris"}), say("Sunny."), say("Streamed."), say("For Claude."))
    config = {"providers": {"co": {"type": "cohere", "api_key": KEY, "base_url": upstream.url}},
              "models": {"smart": {"target": {"provider": "co", "model": "command-a-03-2025"}},
                         "query-embed": {"target": {"provider": "co", "model": "embed-v4.0",
                                                    "params": {"input_type": "search_query"}}}}}
    with GatewayServer(config) as gateway:
        client = gateway.openai_client(api_key="client-key-never-forwarded")
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="smart", messages=messages, tools=TOOLS)
        tool_call = first.choices[0].message.tool_calls[0]
        assert first.choices[0].finish_reason == "tool_calls" and tool_call.function.name == "get_weather"
        messages += [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"}]
        assert client.chat.completions.create(model="co/command-a-03-2025", messages=messages,
                                              tools=TOOLS).choices[0].message.content == "Sunny."
        streamed = client.chat.completions.create(model="smart", messages=messages[:1], stream=True,
                                                  stream_options={"include_usage": True})
        chunks = list(streamed)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streamed."
        assert chunks[-1].usage.prompt_tokens == 10
        claude = gateway.anthropic_client().messages.create(
            model="smart", max_tokens=64, extra_body={"top_k": 20}, thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "hi"}])
        assert claude.content[-1].text == "For Claude."
        vectors = client.embeddings.create(model="query-embed", input="where is Paris?")  # the SDK asks for base64
        assert vectors.data[0].embedding == pytest.approx(vector_of("where is Paris?"), abs=1e-6)
    assert not api.refusals and [c.last_tool_result for c in api.calls][1].text == "sunny"
    chats = [r for r in upstream.requests if r.path == "/v2/chat"]
    assert chats[1].json()["messages"][1]["tool_plan"] == "I will call the tools."  # the plan goes back
    anthropic_sent = chats[3].json()
    assert anthropic_sent["k"] == 20 and anthropic_sent["thinking"] == {"type": "enabled", "token_budget": 1024}
    assert anthropic_sent["max_tokens"] == 64
    embed = upstream.last.json()
    assert embed["input_type"] == "search_query" and embed["embedding_types"] == ["float"]
    for request in upstream.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert "client-key-never-forwarded" not in str(request.headers)


# -- rerank ----------------------------------------------------------------------------------------

QUERY = "capital of France"
DOCUMENTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Bananas are yellow."]


def rerank(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.rerank({"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS, **body},
                                            None))


def test_rerank_request_and_answer(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = rerank(upstream, top_n=2, max_tokens_per_doc=512, priority=1, return_documents=True,
                    rank_fields=["text"], documents=[{"text": d, "title": "t"} for d in DOCUMENTS])
    assert upstream.last.path == "/v2/rerank" and not api.refusals
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    # Objects sent as their text; return_documents (the gateway fills documents) and v1's rank_fields left out.
    assert upstream.last.json() == {"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS, "top_n": 2,
                                    "max_tokens_per_doc": 512, "priority": 1}
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    assert result["results"] == [{"index": 1, "relevance_score": scores[1]},
                                 {"index": 0, "relevance_score": scores[0]}]
    assert result["usage"] == {"search_units": 1} and result["id"].startswith("c0e1a5e2-")


@pytest.mark.parametrize("answer", [
    {"id": "r", "results": [{"index": 3, "relevance_score": 0.5}]},
    {"id": "r", "results": [{"index": 0, "relevance_score": "0.5"}]},
    {"id": "r", "results": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}]},
    {"id": "r", "results": [{"index": 0, "relevance_score": 0.5}], "meta": {"billed_units": {"search_units": -1}}},
    {"id": "r", "data": [{"index": 0, "relevance_score": 0.5}]},
])
def test_malformed_rerank_answers(upstream: FakeUpstream, answer: dict[str, Any]) -> None:
    upstream.add("/v2/rerank", json_reply(answer))
    error = failure(upstream, lambda p: p.rerank({"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS},
                                                 None))
    assert (error.kind, error.status) == ("server_error", 502)


def test_rerank_errors_in_cohere_shape(upstream: FakeUpstream) -> None:
    upstream.json("/v2/rerank", {"id": "e1", "message": f"too many tokens for key {KEY}"}, status=422)
    error = failure(upstream, lambda p: p.rerank({"model": "rerank-v3.5", "query": QUERY, "documents": DOCUMENTS},
                                                 None))
    assert (error.status, error.kind) == (422, "bad_request") and "too many tokens for key [redacted]" in error.message


def test_rerank_through_the_gateway_with_httpx(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    config = {"providers": {"co": {"type": "cohere", "api_key": KEY, "base_url": upstream.url}},
              "models": {"search": {"target": {"provider": "co", "model": "rerank-v3.5"}}}}
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    with GatewayServer(config) as gateway, \
            httpx.Client(base_url=gateway.url, headers={"authorization": "Bearer portway-test"}, timeout=30) as client:
        # A Cohere v2 client's request, as cohere-python sends it to /v2/rerank.
        v2 = client.post("/v2/rerank", json={"model": "search", "query": QUERY, "documents": DOCUMENTS, "top_n": 2})
        assert v2.status_code == 200, v2.text
        assert v2.json()["results"] == [{"index": 1, "relevance_score": scores[1]},
                                        {"index": 0, "relevance_score": scores[0]}]
        assert v2.json()["usage"] == {"search_units": 1} and v2.json()["model"] == "search"
        v1 = client.post("/v1/rerank", json={"model": "co/rerank-v3.5", "query": QUERY, "return_documents": True,
                                             "documents": [{"text": d} for d in DOCUMENTS]})
        assert v1.status_code == 200, v1.text
        assert [(r["index"], r["document"]["text"]) for r in v1.json()["results"]] == \
            [(1, DOCUMENTS[1]), (0, DOCUMENTS[0]), (2, DOCUMENTS[2])]
    assert [call.top_n for call in api.rerank_calls] == [2, None] and not api.refusals

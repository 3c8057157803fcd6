"""The ollama adapter against a fake Ollama server on a real socket
(:mod:`portway_ollama.testing`): the body it sends for each canonical field,
how it reads whole answers, NDJSON streams and errors, embeddings, and the
path through a gateway with the openai SDK as client."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from portway_ollama import OllamaConfig, OllamaProvider, parse_host
from portway_ollama.testing import OllamaAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, ndjson_reply, run_provider
from portway.testing.gateway import GatewayServer
from portway.testing.openai_chat import vector_of
from portway.testing.script import say

T = TypeVar("T")
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
HI = [{"role": "user", "content": "Say hello"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream | None = None, **config: Any) -> OllamaProvider:
    base = {"base_url": upstream.url} if upstream is not None else {}
    return OllamaProvider("local", OllamaConfig.model_validate({"type": "ollama", **base, **config}))


def run(upstream: FakeUpstream, action: Callable[[OllamaProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(provider(upstream, **config), action)


def fake(upstream: FakeUpstream, *steps: Any, **options: Any) -> OllamaAPI:
    return OllamaAPI(list(steps), **options).install(upstream)


def chat(upstream: FakeUpstream, body: dict[str, Any], ctx: Any = None, **config: Any) -> dict[str, Any]:
    answer = run(upstream, lambda p: p.chat(body, ctx), **config)
    ChatCompletion.model_validate(answer)
    return answer


def stream(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    async def collect(p: OllamaProvider) -> list[dict[str, Any]]:
        return [chunk async for chunk in p.chat_stream({**body, "stream": True}, None)]

    chunks = run(upstream, collect, **config)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    return upstream.last.json()


def refused(upstream: FakeUpstream, body: dict[str, Any]) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        chat(upstream, body)
    assert caught.value.kind == "bad_request" and caught.value.code == "unsupported"
    assert upstream.requests == []
    return caught.value


def failure(upstream: FakeUpstream, action: Callable[[OllamaProvider], Awaitable[Any]], **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action, **config)
    return caught.value


# -- configuration -------------------------------------------------------------------------


def test_defaults_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    local = provider()
    assert local.base_url == "http://127.0.0.1:11434"
    assert local.api_key is None and local.auth_headers() == {}


@pytest.mark.parametrize(("host", "url"), [
    ("0.0.0.0", "http://0.0.0.0:11434"), ("gpu-box:8080", "http://gpu-box:8080"),
    ("https://ollama.internal", "https://ollama.internal:443"), ("http://10.0.0.5/ollama/", "http://10.0.0.5:80/ollama"),
    ("[::1]:9000", "http://[::1]:9000"),
])
def test_ollama_host_is_read_as_ollama_python_reads_it(monkeypatch: pytest.MonkeyPatch, host: str, url: str) -> None:
    assert parse_host(host) == url
    monkeypatch.setenv("OLLAMA_HOST", host)
    assert provider().base_url == url
    assert provider(base_url="http://configured:1").base_url == "http://configured:1"  # the config wins


def test_a_compat_base_url_is_taken_back_to_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert provider(base_url="http://box:11434/v1").base_url == "http://box:11434"
    assert provider(base_url="http://box:11434/api/").base_url == "http://box:11434"


def test_ollama_api_key_is_a_bearer_token_for_ollama_com(upstream: FakeUpstream,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-cloud-key-0123456789")
    fake(upstream, say("Hi."), api_key="ollama-cloud-key-0123456789")
    chat(upstream, {"model": "gpt-oss:120b", "messages": HI})
    assert upstream.last.headers["authorization"] == "Bearer ollama-cloud-key-0123456789"
    assert upstream.last.path == "/api/chat"


def test_registration() -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "ollama"]
    module = entry.load()
    assert module.PORTWAY_PLUGIN_KIND == "provider"
    registered: list[Any] = []
    module.register_providers(registered.append)
    assert registered == [OllamaProvider] and OllamaProvider.type == "ollama"


# -- the request ---------------------------------------------------------------------------


def test_sampling_and_limits_go_in_options(upstream: FakeUpstream) -> None:
    fake(upstream, say("Hi."))
    chat(upstream, {"model": "llama3.2", "messages": HI, "temperature": 0.2, "top_p": 0.8, "seed": 7,
                    "max_tokens": 50, "stop": "END", "frequency_penalty": 0.1, "presence_penalty": 0.3,
                    "user": "u-1", "parallel_tool_calls": False, "stream_options": {"include_usage": True}})
    body = sent(upstream)
    assert body["options"] == {"temperature": 0.2, "top_p": 0.8, "seed": 7, "num_predict": 50, "stop": ["END"],
                               "frequency_penalty": 0.1, "presence_penalty": 0.3}
    assert body["stream"] is False  # always said: Ollama streams when it is absent
    for key in ("max_tokens", "temperature", "user", "parallel_tool_calls", "stream_options"):
        assert key not in body


def test_max_completion_tokens_wins_and_configured_options(upstream: FakeUpstream) -> None:
    fake(upstream, say("Hi."), say("Hi."))
    chat(upstream, {"model": "llama3.2", "messages": HI, "max_tokens": 10, "max_completion_tokens": 20,
                    "top_k": 40, "options": {"num_ctx": 32768, "repeat_penalty": 1.1}, "keep_alive": "1h"},
         num_ctx=8192, keep_alive="10m")
    body = sent(upstream)
    assert body["options"] == {"num_ctx": 32768, "num_predict": 20, "top_k": 40, "repeat_penalty": 1.1}
    assert body["keep_alive"] == "1h"
    chat(upstream, {"model": "llama3.2", "messages": HI}, num_ctx=8192, keep_alive="10m")
    assert sent(upstream)["options"] == {"num_ctx": 8192} and sent(upstream)["keep_alive"] == "10m"


@pytest.mark.parametrize(("response_format", "fmt"), [
    ({"type": "json_object"}, "json"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}, {"type": "object"}),
    ({"type": "text"}, None),
])
def test_response_format_is_ollama_format(upstream: FakeUpstream, response_format: dict[str, Any], fmt: Any) -> None:
    fake(upstream, say("{}"))
    chat(upstream, {"model": "llama3.1", "messages": HI, "response_format": response_format})
    assert sent(upstream).get("format") == fmt


@pytest.mark.parametrize(("extra", "think"), [
    ({"reasoning_effort": "high"}, "high"), ({"reasoning_effort": "minimal"}, False),
    ({"reasoning_effort": "none"}, False), ({"think": True}, True), ({"think": "max", "reasoning_effort": "low"}, "max"),
])
def test_think(upstream: FakeUpstream, extra: dict[str, Any], think: Any) -> None:
    fake(upstream, say("Hi."))
    chat(upstream, {"model": "qwen3", "messages": HI, **extra})
    body = sent(upstream)
    assert body["think"] == think and "reasoning_effort" not in body


def test_messages_images_tools_and_results(upstream: FakeUpstream) -> None:
    fake(upstream, say("Sunny."))
    chat(upstream, {"model": "llava", "tools": [WEATHER], "tool_choice": "auto", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Where? "},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]},
        {"role": "assistant", "content": None, "reasoning_content": "Look it up.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "24C"}]}]})
    body = sent(upstream)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where? ", "images": [PNG]},
        {"role": "assistant", "content": "", "thinking": "Look it up.", "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "24C", "tool_call_id": "call_1", "tool_name": "get_weather"}]
    assert body["tools"] == [WEATHER] and "tool_choice" not in body


def test_tool_choice_none_offers_no_tools(upstream: FakeUpstream) -> None:
    fake(upstream, say("Hi."))
    chat(upstream, {"model": "llama3.2", "messages": HI, "tools": [WEATHER], "tool_choice": "none"})
    assert "tools" not in sent(upstream)


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"logit_bias": {"1": 2}}, "logit_bias"),
    ({"tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"), ({"think": "very"}, "think"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://example.com/cat.png"}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,not base64!"}}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "f", "arguments": "[1, 2]"}}]}]}, "messages[0].tool_calls[0].function.arguments"),
])
def test_what_ollama_cannot_take_is_a_400_naming_it(upstream: FakeUpstream, extra: dict[str, Any],
                                                    param: str) -> None:
    fake(upstream, say("Hi."))
    error = refused(upstream, {"model": "llava", "messages": HI, **extra})
    assert error.param == param


# -- answers -------------------------------------------------------------------------------


def test_text_answer_with_thinking_and_usage(upstream: FakeUpstream) -> None:
    fake(upstream, say("Paris.", reasoning="France's capital.", input_tokens=26, output_tokens=3))
    answer = chat(upstream, {"model": "qwen3", "messages": HI})
    message = answer["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("Paris.", "France's capital.")
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29}


def test_tool_call_answer_gets_string_arguments_and_an_id(upstream: FakeUpstream) -> None:
    upstream.json("/api/chat", {"model": "llama3.2", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]}, "done": True, "done_reason": "stop",
        "prompt_eval_count": 169, "eval_count": 15})
    answer = chat(upstream, {"model": "llama3.2", "messages": HI, "tools": [WEATHER]})
    choice = answer["choices"][0]
    [tool_call] = choice["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}
    assert tool_call["id"].startswith("call_")  # an older Ollama gives none: one is made
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None


def test_truncated_answer_is_length(upstream: FakeUpstream) -> None:
    fake(upstream, say("Par", truncated=True))
    assert chat(upstream, {"model": "llama3.2", "messages": HI})["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("answer", [
    {"message": {"content": 3}, "done": True}, {"message": {"content": "x"}, "done": False},
    {"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}, "done": True},
    {"message": {"content": "x"}, "done": True, "eval_count": "many"}, [1, 2],
])
def test_malformed_answers_are_retryable_502s(upstream: FakeUpstream, answer: Any) -> None:
    upstream.json("/api/chat", answer)
    error = failure(upstream, lambda p: p.chat({"model": "m", "messages": HI}, None))
    assert error.status == 502 and error.kind == "server_error" and "malformed" in error.message


def test_text_stream_with_thinking(upstream: FakeUpstream) -> None:
    fake(upstream, say("The capital is Paris.", reasoning="Think first.", input_tokens=9, output_tokens=5))
    chunks = stream(upstream, {"model": "qwen3", "messages": HI})
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "The capital is Paris."
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Think first."
    assert deltas[0]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] \
        == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 14
    assert sent(upstream)["stream"] is True


def test_tool_calls_stream_whole_and_keep_their_indexes(upstream: FakeUpstream) -> None:
    upstream.add("/api/chat", ndjson_reply([
        {"message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_a", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, "done": False},
        {"message": {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_b", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]}, "done": False},
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}]))
    chunks = stream(upstream, {"model": "llama3.2", "messages": HI, "tools": [WEATHER]})
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert [(tc["index"], tc["id"], tc["function"]["arguments"]) for tc in calls] == [
        (0, "call_a", '{"city":"Paris"}'), (1, "call_b", '{"city":"Rome"}')]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


def test_stream_cut_before_done_is_a_connection_failure(upstream: FakeUpstream) -> None:
    upstream.add("/api/chat", ndjson_reply([{"message": {"role": "assistant", "content": "Hal"}, "done": False}]))
    error = failure(upstream, lambda p: _drain(p))
    assert error.kind == "connection"


@pytest.mark.parametrize(("line", "kind", "status"), [
    ({"error": "an error was encountered while running the model"}, "server_error", 502),
    ({"error": "rate limited upstream", "status": 429}, "rate_limit", 429),
])
def test_an_error_line_mid_stream(upstream: FakeUpstream, line: dict[str, Any], kind: str, status: int) -> None:
    upstream.add("/api/chat", ndjson_reply([{"message": {"role": "assistant", "content": "Hi"}, "done": False}, line]))
    error = failure(upstream, lambda p: _drain(p))
    assert (error.kind, error.status) == (kind, status)
    assert line["error"] in error.message


def test_a_stream_line_that_is_not_json(upstream: FakeUpstream) -> None:
    upstream.add("/api/chat", Reply(chunks=[b'{"message": {"content": "a"}, "done": false}\n', b"{oops\n"],
                                    content_type="application/x-ndjson"))
    error = failure(upstream, lambda p: _drain(p))
    assert error.status == 502 and "not JSON" in error.message


async def _drain(p: OllamaProvider) -> list[Any]:
    return [chunk async for chunk in p.chat_stream({"model": "m", "messages": HI, "stream": True}, None)]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "message", "kind"), [
    (404, "model 'llama9' not found", "not_found"), (400, 'invalid format: "xml"', "bad_request"),
    (500, "llama runner process has terminated", "server_error"), (429, "too many requests", "rate_limit"),
    (401, "unauthorized", "authentication"), (502, "cloud model unreachable", "server_error"),
])
def test_errors_keep_ollama_message(upstream: FakeUpstream, status: int, message: str, kind: str) -> None:
    upstream.json("/api/chat", {"error": message}, status=status, headers={"retry-after": "3"})
    for action in (lambda p: p.chat({"model": "m", "messages": HI}, None), _drain):
        error = failure(upstream, action)
        assert (error.status, error.kind) == (status, kind)
        assert message in error.message
        if status == 429:
            assert error.retry_after == "3"


def test_the_cloud_key_is_never_echoed(upstream: FakeUpstream) -> None:
    key = "ollama-secret-key-0123456789"
    upstream.json("/api/chat", {"error": f"key {key} is not valid"}, status=401)
    error = failure(upstream, lambda p: p.chat({"model": "m", "messages": HI}, None), api_key=key)
    assert key not in error.message and error.kind == "authentication"


# -- embeddings ----------------------------------------------------------------------------


def test_embeddings(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    answer = run(upstream, lambda p: p.embeddings({"model": "nomic-embed-text", "input": ["a b", "c"],
                                                   "dimensions": 4, "truncate": False}, None), keep_alive="1m")
    assert api.embed_requests == [{"model": "nomic-embed-text", "input": ["a b", "c"], "dimensions": 4,
                                   "truncate": False, "keep_alive": "1m"}]
    assert [item["embedding"] for item in answer["data"]] == [vector_of("a b")[:4], vector_of("c")[:4]]
    assert answer["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    encoded = run(upstream, lambda p: p.embeddings({"model": "nomic-embed-text", "input": "c",
                                                    "encoding_format": "base64"}, None))
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(vector_of("c"), rel=1e-6)


def test_embeddings_refuse_token_ids_and_check_the_count(upstream: FakeUpstream) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        run(upstream, lambda p: p.embeddings({"model": "m", "input": [[1, 2, 3]]}, None))
    assert caught.value.param == "input" and upstream.requests == []
    upstream.json("/api/embed", {"embeddings": [[0.1]]})
    error = failure(upstream, lambda p: p.embeddings({"model": "m", "input": ["a", "b"]}, None))
    assert error.status == 502


# -- through the gateway -------------------------------------------------------------------


def test_through_the_gateway(upstream: FakeUpstream) -> None:
    fake(upstream, say("Hello there.", input_tokens=5, output_tokens=2), say("Hello again."))
    with GatewayServer({"providers": {"local": {"type": "ollama", "base_url": upstream.url,
                                                "num_ctx": 4096}}}) as server:
        client = server.openai_client()
        reply = client.chat.completions.create(model="local/llama3.2", messages=HI, max_tokens=30)
        assert reply.choices[0].message.content == "Hello there." and reply.usage.total_tokens == 7
        assert sent(upstream)["options"] == {"num_ctx": 4096, "num_predict": 30}
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="local/llama3.2", messages=HI, stream=True) if c.choices)
        assert text == "Hello again."


def test_anthropic_clients_top_k_and_thinking(upstream: FakeUpstream) -> None:
    fake(upstream, say("Paris.", reasoning="Capital of France."))
    with GatewayServer({"providers": {"local": {"type": "ollama", "base_url": upstream.url}}}) as server:
        reply = server.anthropic_client().messages.create(
            model="local/qwen3", max_tokens=200, extra_body={"top_k": 20}, messages=[{"role": "user", "content": "Capital?"}],
            thinking={"type": "enabled", "budget_tokens": 1024})
    body = sent(upstream)
    assert body["options"] == {"num_predict": 200, "top_k": 20}
    assert body["think"] is True and "thinking" not in body and "top_k" not in body
    assert [block.type for block in reply.content] == ["thinking", "text"]

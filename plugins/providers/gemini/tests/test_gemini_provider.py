"""The gemini adapter against a fake Gemini API on a real socket: what it
sends (URL, headers, body) and what it makes of each answer."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import portway_gemini
from portway.errors import ProviderError
from portway.testing import FakeUpstream, Reply, collect_stream, run_provider, split_reads, sse_reply
from portway.testing.script import call, say
from portway_gemini import GeminiProvider
from portway_gemini.testing import GeminiAPI, error_body

T = TypeVar("T")
KEY = "AIzaSy-test-key-0123456789"
PATH = "/v1beta/models/gemini-2.5-flash"
MODEL = "gemini-2.5-flash"


def run(upstream: FakeUpstream, action: Callable[[GeminiProvider], Awaitable[T]], **config: Any) -> T:
    settings = GeminiProvider.config_model(type="gemini", api_key=KEY, base_url=upstream.url, **config)
    return run_provider(GeminiProvider("gem", settings), action)


def failure(upstream: FakeUpstream, action: Callable[[GeminiProvider], Awaitable[Any]]) -> ProviderError:
    with pytest.raises(ProviderError) as err:
        run(upstream, action)
    assert KEY not in err.value.message
    return err.value


def fake(upstream: FakeUpstream, *steps: Any) -> GeminiAPI:
    return GeminiAPI(list(steps), api_key=KEY, models=[MODEL]).install(upstream)


def chat(body: dict[str, Any]) -> Callable[[GeminiProvider], Awaitable[dict[str, Any]]]:
    return lambda p: p.chat({"model": MODEL, **body}, None)


def stream(body: dict[str, Any]) -> Callable[[GeminiProvider], Awaitable[list[dict[str, Any]]]]:
    return lambda p: collect_stream(p, {"model": MODEL, "stream": True, **body})


HI = {"messages": [{"role": "user", "content": "hi"}]}


def test_chat_request_and_answer(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, say("Hello there."))
    out = run(fake_upstream, chat({
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "top_k": 7, "stop": "END", "seed": 3,
        "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u1", "parallel_tool_calls": False}))

    request = fake_upstream.last
    assert request.path == f"{PATH}:generateContent" and request.query == ""
    assert request.headers["x-goog-api-key"] == KEY and "authorization" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "topK": 7, "seed": 3,
                             "presencePenalty": 0.1, "frequencyPenalty": 0.2, "stopSequences": ["END"]},
    }
    assert not api.refusals
    ChatCompletion.model_validate(out)
    assert out["model"] == MODEL and out["id"].startswith("resp-")
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Hello there."}}]
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                            "prompt_tokens_details": {"cached_tokens": 0}}


def test_tool_round_trip_replays_the_thought_signature(fake_upstream: FakeUpstream) -> None:
    """Gemini has no call ids and signs the first call of a step: the result
    is matched by name, and the signature goes back on the call, or the
    (strict) fake refuses the second request as Gemini 3 does."""
    api = fake(fake_upstream, call("get_weather", {"city": "Paris"}), say("Sunny."))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False}}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = run(fake_upstream, chat({"messages": messages, "tools": tools, "tool_choice": "required"}))
    sent = fake_upstream.last.json()
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather now",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    message = first["choices"][0]["message"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    [tool_call] = message["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert tool_call["id"].startswith("call_")
    [block] = message["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("c2lnLXtest")

    messages += [message, {"role": "tool", "tool_call_id": tool_call["id"], "content": "sunny, 24C"}]
    second = run(fake_upstream, chat({"messages": messages, "tools": tools}))
    assert not api.refusals, api.refusals
    assert second["choices"][0]["message"]["content"] == "Sunny."
    assert fake_upstream.last.json()["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                     "thoughtSignature": block["signature"]}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"output": "sunny, 24C"}}}]},
    ]


def test_a_result_for_an_unknown_call_is_a_400_naming_it(fake_upstream: FakeUpstream) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]
    with pytest.raises(Exception) as err:
        run(fake_upstream, chat({"messages": messages}))
    assert getattr(err.value, "kind", None) == "bad_request"
    assert getattr(err.value, "param", None) == "messages[1].tool_call_id"
    assert not fake_upstream.requests


def test_system_messages_anywhere_fold_into_the_instruction_and_turns_merge(fake_upstream: FakeUpstream) -> None:
    fake(fake_upstream, say("ok"))
    png = "iVBORw0KGgo="
    run(fake_upstream, chat({"messages": [
        {"role": "developer", "content": "Rule one."},
        {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]},
        {"role": "user", "content": "and?"},
        {"role": "assistant", "content": "A cat."},
        {"role": "system", "content": [{"type": "text", "text": "Rule two."}]},
        {"role": "user", "content": "Sure?"},
    ]}))
    sent = fake_upstream.last.json()
    assert sent["systemInstruction"] == {"parts": [{"text": "Rule one."}, {"text": "Rule two."}]}
    assert sent["contents"] == [
        {"role": "user", "parts": [{"text": "Look:"}, {"inlineData": {"mimeType": "image/png", "data": png}},
                                   {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
                                   {"text": "and?"}]},
        {"role": "model", "parts": [{"text": "A cat."}]},
        {"role": "user", "parts": [{"text": "Sure?"}]},
    ]


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/img"}}]}]},
     "messages[0].content[0]"),
    ({**HI, "logprobs": True}, "logprobs"),
    ({**HI, "logit_bias": {"1": 5}}, "logit_bias"),
    ({**HI, "reasoning_effort": "xhigh"}, "reasoning_effort"),
    ({**HI, "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({**HI, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function"}},
     "tool_choice"),
    ({**HI, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node"}}}}, "response_format.json_schema.schema.properties.next"),
])
def test_what_gemini_cannot_express_is_a_400_naming_the_field(fake_upstream: FakeUpstream, body: dict[str, Any],
                                                              param: str) -> None:
    with pytest.raises(Exception) as err:
        run(fake_upstream, chat(body))
    assert (getattr(err.value, "kind", None), getattr(err.value, "param", None)) == ("bad_request", param)
    assert not fake_upstream.requests


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {
        "name": "f"}}]}}, {"mode": "VALIDATED", "allowedFunctionNames": ["f"]}),
])
def test_tool_choice(fake_upstream: FakeUpstream, choice: Any, config: dict[str, Any]) -> None:
    fake(fake_upstream, say("ok"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    run(fake_upstream, chat({**HI, "tools": tools, "tool_choice": choice}))
    sent = fake_upstream.last.json()
    assert sent["tools"] == [{"functionDeclarations": [{"name": "f"}]}]  # no arguments: no parameters
    assert sent["toolConfig"] == {"functionCallingConfig": config}


def test_json_schema_mode_and_thinking(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, say('{"n": 1}'), say('{}'))
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "properties": {"n": {"type": "integer", "minimum": 0, "multipleOf": 1},
                             "tag": {"type": ["string", "null"], "enum": ["a", "b"]},
                             "kind": {"$ref": "#/$defs/Kind"}},
              "required": ["n"], "additionalProperties": False, "$defs": {"Kind": {"const": "x"}}}
    run(fake_upstream, chat({**HI, "reasoning_effort": "low", "n": 2,
                             "response_format": {"type": "json_schema",
                                                 "json_schema": {"name": "n", "schema": schema, "strict": True}}}))
    assert not api.refusals, api.refusals
    assert fake_upstream.last.json()["generationConfig"] == {
        "candidateCount": 2, "responseMimeType": "application/json", "thinkingConfig": {"thinkingLevel": "LOW"},
        "responseSchema": {"type": "OBJECT", "required": ["n"], "propertyOrdering": ["n", "tag", "kind"],
                           "properties": {"n": {"type": "INTEGER", "minimum": 0},
                                          "tag": {"type": "STRING", "nullable": True, "enum": ["a", "b"]},
                                          "kind": {"type": "STRING", "enum": ["x"]}}}}
    run(fake_upstream, chat({**HI, "response_format": {"type": "json_object"}}))
    assert fake_upstream.last.json()["generationConfig"] == {"responseMimeType": "application/json"}


def test_candidates_thoughts_usage_and_finish_reasons(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(f"{PATH}:generateContent", {
        "candidates": [
            {"index": 0, "finishReason": "MAX_TOKENS", "content": {"role": "model", "parts": [
                {"text": "Thinking about it", "thought": True}, {"text": "Par"}, {"text": "is"}]}},
            {"index": 1, "finishReason": "SAFETY", "content": {"role": "model", "parts": []}},
        ],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 7, "thoughtsTokenCount": 30,
                          "cachedContentTokenCount": 60, "totalTokenCount": 137},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "r1"})
    out = run(fake_upstream, chat({**HI, "n": 2}))
    ChatCompletion.model_validate(out)
    assert out["id"] == "r1" and out["model"] == "gemini-2.5-flash-001"
    assert [c["finish_reason"] for c in out["choices"]] == ["length", "content_filter"]
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "Paris",
                                            "reasoning_content": "Thinking about it"}
    assert out["choices"][1]["message"] == {"role": "assistant", "content": None}
    assert out["usage"] == {"prompt_tokens": 100, "completion_tokens": 37, "total_tokens": 137,
                            "prompt_tokens_details": {"cached_tokens": 60},
                            "completion_tokens_details": {"reasoning_tokens": 30}}


@pytest.mark.parametrize("stream_it", [False, True])
def test_a_blocked_prompt_is_a_content_filter_error(fake_upstream: FakeUpstream, stream_it: bool) -> None:
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 3}}
    if stream_it:
        fake_upstream.sse(f"{PATH}:streamGenerateContent", [blocked], line_end="\r\n")
    else:
        fake_upstream.json(f"{PATH}:generateContent", blocked)
    error = failure(fake_upstream, stream(HI) if stream_it else chat(HI))
    assert (error.kind, error.status, error.code) == ("content_filter", 400, "content_filter")
    assert "PROHIBITED_CONTENT" in error.message and error.provider == "gem"


def test_stream(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, call("get_weather", {"city": "Paris"}, text="Let me check."))
    chunks = run(fake_upstream, stream({**HI, "stream_options": {"include_usage": True}}))
    request = fake_upstream.last
    assert request.path == f"{PATH}:streamGenerateContent" and request.query == "alt=sse"
    assert "stream" not in request.json() and "stream_options" not in request.json()
    assert not api.refusals
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    signature = deltas[3]["thinking_blocks"][0]["signature"]
    call_id = deltas[4]["tool_calls"][0]["id"]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Let me "},
        {"content": "check."},
        {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": signature}]},
        {"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {},
        None,
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                                   "prompt_tokens_details": {"cached_tokens": 0}}


def test_stream_split_across_reads_with_crlf(fake_upstream: FakeUpstream) -> None:
    events = [{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}]},
              {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "lo"}]},
                               "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 2,
                                                                           "candidatesTokenCount": 1}}]
    whole = b"".join(sse_reply(events, line_end="\r\n").chunks or [])  # type: ignore[arg-type]
    assert b"\r\n\r\n" in whole
    with split_reads([whole[i:i + 5] for i in range(0, len(whole), 5)]) as reads:
        fake_upstream.add(f"{PATH}:streamGenerateContent", Reply(chunks=reads, content_type="text/event-stream"))
        chunks = run(fake_upstream, stream(HI))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello"
    assert chunks[-1]["usage"]["completion_tokens"] == 1


def test_stream_cut_before_the_finish_reason_is_a_connection_error(fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(f"{PATH}:streamGenerateContent",
                      [{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}]}])
    assert failure(fake_upstream, stream(HI)).kind == "connection"


def test_stream_error_event(fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(f"{PATH}:streamGenerateContent", [
        {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}]},
        error_body(503, f"The model is overloaded. (key {KEY})")], line_end="\r\n")
    seen: list[dict[str, Any]] = []

    async def action(provider: GeminiProvider) -> None:
        async for chunk in provider.chat_stream({"model": MODEL, "stream": True, **HI}, None):
            seen.append(chunk)

    error = failure(fake_upstream, action)
    assert (error.kind, error.code) == ("overloaded", "UNAVAILABLE") and "overloaded" in error.message
    assert [c["choices"][0]["delta"] for c in seen] == [{"role": "assistant", "content": ""}, {"content": "Hel"}]


def test_malformed_answers_are_retryable_502s(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(f"{PATH}:generateContent", {"candidates": [{"content": {"parts": [{"text": 5}]}}]})
    error = failure(fake_upstream, chat(HI))
    assert (error.kind, error.status) == ("server_error", 502) and "parts[0].text" in error.message


ERRORS = [
    (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID", None,
     "authentication", None),
    (400, "INVALID_ARGUMENT", "The input token count (2000000) exceeds the maximum number of tokens allowed "
     "(1048576).", None, None, "context_length", None),
    (403, "PERMISSION_DENIED", "Permission denied on resource project p.", None, None, "permission", None),
    (404, "NOT_FOUND", "models/nope is not found for API version v1beta", None, None, "not_found", None),
    (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", None, "37.2", "rate_limit", "38"),
    (500, "INTERNAL", "An internal error has occurred.", None, None, "server_error", None),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", None, None, "overloaded", None),
]


@pytest.mark.parametrize(("status", "name", "message", "reason", "delay", "kind", "retry_after"), ERRORS)
@pytest.mark.parametrize("stream_it", [False, True])
def test_errors(fake_upstream: FakeUpstream, stream_it: bool, status: int, name: str, message: str,
                reason: str | None, delay: str | None, kind: str, retry_after: str | None) -> None:
    body = error_body(status, f"{message} [{KEY}]", retry_after=delay, reason=reason)
    fake_upstream.json(f"{PATH}:{'streamGenerateContent' if stream_it else 'generateContent'}", body, status=status)
    error = failure(fake_upstream, stream(HI) if stream_it else chat(HI))
    assert (error.kind, error.status, error.code, error.retry_after) == (kind, status, name, retry_after)
    assert message in error.message and "[[redacted]]" in error.message


def test_a_retry_after_header_wins_over_retry_info(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(f"{PATH}:generateContent", error_body(429, "slow down", retry_after="30"), status=429,
                       headers={"retry-after": "5"})
    assert failure(fake_upstream, chat(HI)).retry_after == "5"


def test_embeddings(fake_upstream: FakeUpstream) -> None:
    model = "gemini-embedding-001"
    api = GeminiAPI([], api_key=KEY, models=[model]).install(fake_upstream)

    one = run(fake_upstream, lambda p: p.embeddings({"model": model, "input": "hello", "dimensions": 3,
                                                      "task_type": "RETRIEVAL_QUERY"}, None))
    request = fake_upstream.last
    assert request.path == f"/v1beta/models/{model}:embedContent"
    assert request.json() == {"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3,
                              "taskType": "RETRIEVAL_QUERY"}
    CreateEmbeddingResponse.model_validate(one)
    assert one["data"] == [{"object": "embedding", "index": 0, "embedding": [0.5, 0.6, 0.7]}]

    many = run(fake_upstream, lambda p: p.embeddings({"model": model, "input": ["a", "bb"],
                                                       "encoding_format": "base64"}, None))
    request = fake_upstream.last
    assert request.path == f"/v1beta/models/{model}:batchEmbedContents"
    assert request.json() == {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": "a"}]}},
                                           {"model": f"models/{model}", "content": {"parts": [{"text": "bb"}]}}]}
    assert not api.refusals
    vectors = [list(struct.unpack("<4f", base64.b64decode(item["embedding"]))) for item in many["data"]]
    assert vectors == [pytest.approx([0.1, 0.2, 0.3, 0.4]), pytest.approx([0.2, 0.3, 0.4, 0.5])]

    with pytest.raises(Exception) as err:
        run(fake_upstream, lambda p: p.embeddings({"model": model, "input": [[1, 2]]}, None))
    assert getattr(err.value, "param", None) == "input"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key-123456")
    provider = GeminiProvider("g", GeminiProvider.config_model(type="gemini"))
    assert provider.auth_headers() == {"x-goog-api-key": "google-key-123456"}
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-123456")
    provider = GeminiProvider("g", GeminiProvider.config_model(type="gemini"))
    assert provider.auth_headers() == {"x-goog-api-key": "gemini-key-123456"}
    assert provider.base_url == "https://generativelanguage.googleapis.com"


def test_model_names_stay_one_path_segment(fake_upstream: FakeUpstream) -> None:
    fake_upstream.json("/v1/models/tuned/x@v1:generateContent", {"candidates": [
        {"index": 0, "finishReason": "STOP", "content": {"role": "model", "parts": [{"text": "ok"}]}}]})
    out = run(fake_upstream, lambda p: p.chat({"model": "models/tuned/x@v1", **HI}, None), api_version="v1")
    assert out["choices"][0]["message"]["content"] == "ok"
    provider = GeminiProvider("g", GeminiProvider.config_model(type="gemini", api_key=KEY))
    assert provider.model_path("models/tuned/x@v1", "generateContent") == "/v1beta/models/tuned%2Fx@v1:generateContent"
    with pytest.raises(Exception) as err:
        provider.model_path("..", "generateContent")
    assert getattr(err.value, "param", None) == "model"


def test_registration() -> None:
    registered: list[type] = []
    portway_gemini.register_providers(registered.append)
    assert registered == [GeminiProvider] and portway_gemini.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "gemini"]
    assert [e.value for e in entry] == ["portway_gemini"]

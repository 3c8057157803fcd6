"""The bedrock adapter against the fake Bedrock Runtime API on a real socket:
what it sends (URL, headers, signature, body) and what it makes of answers."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import portway_bedrock
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from portway_bedrock import BedrockProvider
from portway_bedrock.testing import BedrockAPI, embedding_for, error_reply, event, event_stream_reply, exception

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, collect_stream, run_provider, split_reads
from portway.testing.script import call, say

T = TypeVar("T")
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQDexampleSessionToken"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"
PNG = "iVBORw0KGgo="


def settings(upstream: FakeUpstream, **config: Any) -> Any:
    base: dict[str, Any] = {"type": "bedrock", "region": "us-east-1", "base_url": upstream.url,
                            "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "aws_session_token": TOKEN}
    return BedrockProvider.config_model(**{**base, **config})


def run(upstream: FakeUpstream, action: Callable[[BedrockProvider], Awaitable[T]], **config: Any) -> T:
    return run_provider(BedrockProvider("br", settings(upstream, **config)), action)


def fake(upstream: FakeUpstream, *script: Any, **options: Any) -> BedrockAPI:
    options.setdefault("credentials", {KEY_ID: (SECRET, TOKEN)})
    return BedrockAPI(list(script), **options).install(upstream)


def failure(upstream: FakeUpstream, action: Callable[[BedrockProvider], Awaitable[Any]], **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action, **config)
    error = caught.value
    for secret in (SECRET, TOKEN):
        assert secret not in error.message
    return error


BODY: dict[str, Any] = {
    "model": CLAUDE,
    "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather where this is?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "tooluse_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "tooluse_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks. Summarise."},
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                                "parameters": {"type": "object", "properties": {"city": {}}}}},
              {"type": "function", "function": {"name": "get_time"}}],
    "tool_choice": "auto",
    "max_tokens": 64, "temperature": 0.25, "top_p": 0.9, "stop": ["END"], "seed": 7, "user": "u-1",
}


@pytest.mark.parametrize("transport", ["httptools", "aiohttp", "httpx"])
def test_chat_is_signed_and_mapped(fake_upstream: FakeUpstream, transport: str) -> None:
    api = fake(fake_upstream, say("Sunny at noon."))
    out = run(fake_upstream, lambda p: p.chat(BODY, None), http_client=transport)

    request = fake_upstream.last
    # The model id is one escaped segment, on the wire as botocore sends it, and the signature covers that path.
    assert request.raw_path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert api.refusals == [] and len(api.calls) == 1
    assert request.headers["x-amz-security-token"] == TOKEN
    assert request.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{request.headers['x-amz-date'][:8]}/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "system": [{"text": "Be terse."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather where this is?"},
                                         {"image": {"format": "png", "source": {"bytes": PNG}}}]},
            {"role": "assistant", "content": [
                {"text": "Let me look."},
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}], "status": "success"}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "noon"}], "status": "success"}},
                {"text": "Thanks. Summarise."}]},
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.25, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {"tools": [
            {"toolSpec": {"name": "get_weather", "description": "Weather by city",
                          "inputSchema": {"json": {"type": "object", "properties": {"city": {}}}}}},
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}],
            "toolChoice": {"auto": {}}},
    }
    ChatCompletion.model_validate(out)
    assert out["id"].startswith("chatcmpl-req-") and out["model"] == CLAUDE
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "Sunny at noon."}}]
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                            "prompt_tokens_details": {"cached_tokens": 0}}


def test_arn_model_ids_are_one_segment(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, say("hi"))
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    run(fake_upstream, lambda p: p.chat({"model": arn, "messages": [{"role": "user", "content": "hi"}]}, None))
    assert fake_upstream.last.raw_path == \
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3/converse"
    assert api.refusals == []


def test_a_dot_segment_is_no_model(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        run(fake_upstream, lambda p: p.chat({"model": "..", "messages": [{"role": "user", "content": "hi"}]}, None))
    assert caught.value.kind == "bad_request" and caught.value.param == "model"
    assert fake_upstream.requests == []


def test_bearer_api_key(fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")  # the configured key wins over the environment
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    api = fake(fake_upstream, say("hi"), credentials={}, api_key="ABSKbedrock-api-key-1234567890")
    config = {"aws_access_key_id": None, "aws_secret_access_key": None, "aws_session_token": None,
              "api_key": "ABSKbedrock-api-key-1234567890"}
    run(fake_upstream, lambda p: p.chat({"model": NOVA, "messages": [{"role": "user", "content": "hi"}]}, None),
        **config)
    request = fake_upstream.last
    assert request.headers["authorization"] == "Bearer ABSKbedrock-api-key-1234567890"
    assert not [name for name in request.headers if name.startswith("x-amz-")]
    assert api.refusals == []


def test_credentials_from_the_environment(fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
                        "AWS_REGION": "eu-west-3"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    api = fake(fake_upstream, say("hi"), region="eu-west-3")
    provider = BedrockProvider("br", BedrockProvider.config_model(type="bedrock", base_url=fake_upstream.url))
    assert provider.region == "eu-west-3"
    run_provider(provider, lambda p: p.chat({"model": NOVA, "messages": [{"role": "user", "content": "hi"}]}, None))
    assert api.refusals == [] and "/eu-west-3/bedrock/aws4_request" in fake_upstream.last.headers["authorization"]
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    default = BedrockProvider("br", BedrockProvider.config_model(type="bedrock"))
    assert default.base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"


@pytest.mark.parametrize(("config", "problem"), [
    ({"region": None}, "needs a region"),
    ({"api_key": "k" * 20}, "either api_key or AWS keys"),
    ({"aws_secret_access_key": None}, "go together"),
])
def test_config_problems(fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any],
                         problem: str) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    raw = {"base_url": None} if config.get("region", "x") is None else {}
    with pytest.raises(PortwayError) as caught:
        BedrockProvider("br", settings(fake_upstream, **{**config, **raw}))
    assert problem in caught.value.message


def test_no_credentials_is_an_authentication_error(fake_upstream: FakeUpstream,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    error = failure(fake_upstream, lambda p: p.chat({"model": NOVA, "messages": [{"role": "user", "content": "x"}]},
                                                    None),
                    aws_access_key_id=None, aws_secret_access_key=None, aws_session_token=None)
    assert error.kind == "authentication" and "no credentials" in error.message
    assert fake_upstream.requests == []


def test_request_options(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, say("{}"), say("{}"), say("ok"))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = {"model": CLAUDE, "messages": [{"role": "developer", "content": [
                {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}},
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024}, "metadata": {"team": "a"},
            "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
            "additionalModelRequestFields": {"anthropic_beta": ["x"]}}
    run(fake_upstream, lambda p: p.chat(body, None))
    sent = fake_upstream.last.json()
    assert sent["system"] == [{"text": "Rules."}, {"cachePoint": {"type": "default"}}]
    assert sent["outputConfig"] == {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
        "schema": '{"type":"object","properties":{"a":{"type":"string"}}}', "name": "thing"}}}}
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    assert sent["additionalModelRequestFields"] == {"top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
                                                    "anthropic_beta": ["x"]}
    assert sent["requestMetadata"] == {"team": "a"}
    assert sent["guardrailConfig"] == {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}

    nova = {"model": NOVA, "messages": [{"role": "user", "content": "hi"}], "top_k": 5, "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "f"}}], "response_format": {"type": "json_object"},
            "thinking": {"type": "enabled"}}
    run(fake_upstream, lambda p: p.chat(nova, None))
    sent = fake_upstream.last.json()
    assert sent["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 5}}  # no thinking: Claude's only
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}
    assert sent["system"] == [{"text": "Respond with a single valid JSON object and nothing else."}]

    # tool_choice none with no tool history: no toolConfig at all, so no tool can be called.
    run(fake_upstream, lambda p: p.chat({**nova, "tool_choice": "none", "top_k": None}, None))
    assert "toolConfig" not in fake_upstream.last.json()
    assert api.refusals == []


@pytest.mark.parametrize(("change", "param"), [
    ({"temperature": 1.5}, "temperature"),
    ({"n": 2}, "n"),
    ({"tool_choice": "none"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "https://example.com/cat.png"}}]}]},
     "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]},
     "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages.0.content.0"),
    ({"model": "meta.llama3-1-8b-instruct-v1:0", "top_k": 3}, "top_k"),
])
def test_refused_with_the_field(fake_upstream: FakeUpstream, change: dict[str, Any], param: str) -> None:
    fake(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        run(fake_upstream, lambda p: p.chat({**BODY, **change}, None))
    assert (caught.value.kind, caught.value.status, caught.value.param) == ("bad_request", 400, param)
    assert fake_upstream.requests == []


def test_documents_and_reasoning_round_trip(fake_upstream: FakeUpstream) -> None:
    answer = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "sig-1"}}},
        {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
        {"text": "Done."}]}}, "stopReason": "max_tokens",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 57, "cacheReadInputTokens": 40,
                  "cacheWriteInputTokens": 10}, "metrics": {"latencyMs": 1}}
    fake_upstream.json("/model/*", answer)
    body = {"model": CLAUDE, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Read."}, {"type": "file", "file": {
            "filename": "Q3 report (final).pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}]},
        {"role": "assistant", "content": "Earlier.", "reasoning_content": "dropped without its signature",
         "thinking_blocks": [{"type": "thinking", "thinking": "Before.", "signature": "sig-0"}]},
        {"role": "user", "content": "Again."}]}
    out = run(fake_upstream, lambda p: p.chat(body, None))
    sent = fake_upstream.last.json()["messages"]
    assert sent[0]["content"][1] == {"document": {"format": "pdf", "name": "Q3 report (final)",
                                                  "source": {"bytes": "JVBERi0="}}}
    assert sent[1]["content"] == [{"reasoningContent": {"reasoningText": {"text": "Before.", "signature": "sig-0"}}},
                                  {"text": "Earlier."}]
    message = out["choices"][0]["message"]
    assert message["content"] == "Done." and message["reasoning_content"] == "Think."
    assert message["thinking_blocks"] == [{"type": "thinking", "thinking": "Think.", "signature": "sig-1"},
                                          {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}]
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 53, "completion_tokens": 4, "total_tokens": 57,
                            "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 10}}


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("tool_use", "tool_calls"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"), (None, None), ("malformed_tool_use", None)])
def test_stop_reasons(fake_upstream: FakeUpstream, stop: str | None, finish: str | None) -> None:
    fake_upstream.json("/model/*", {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
                                    "stopReason": stop, "usage": {"inputTokens": 1, "outputTokens": 1}})
    body = {"model": NOVA, "messages": [{"role": "user", "content": "hi"}]}
    if finish is None:  # no stop reason, or output the model itself calls unusable: a retryable bad answer
        error = failure(fake_upstream, lambda p: p.chat(body, None))
        assert (error.kind, error.status) == ("server_error", 502)
        return
    out = run(fake_upstream, lambda p: p.chat(body, None))
    assert out["choices"][0]["finish_reason"] == finish


STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
EXPECTED_DELTAS = [
    {"role": "assistant", "content": ""},
    {"content": "Chec"}, {"content": "king"},
    {"tool_calls": [{"index": 0, "id": "tooluse_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": ""}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    {},
    None,
]


def deltas(chunks: list[dict[str, Any]]) -> list[Any]:
    return [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]


def test_stream(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream, call("get_weather", {"city": "Paris"}, text="Checking", id="tooluse_1"))
    chunks = run(fake_upstream, lambda p: collect_stream(p, STREAM_BODY))
    assert fake_upstream.last.raw_path.endswith("%3A0/converse-stream") and api.refusals == []
    assert "stream" not in api.calls[0].body and "stream_options" not in api.calls[0].body
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert deltas(chunks) == EXPECTED_DELTAS
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 15
    assert len({c["id"] for c in chunks}) == 1


def test_stream_frames_split_across_reads(fake_upstream: FakeUpstream) -> None:
    """Frames cut at every 7 bytes, each piece its own network read."""
    frames = b"".join(api_stream_frames())
    with split_reads([frames[i:i + 7] for i in range(0, len(frames), 7)]) as reads:
        fake_upstream.add("/model/*", event_stream_reply(reads))
        chunks = run(fake_upstream, lambda p: collect_stream(p, STREAM_BODY))
    assert deltas(chunks) == EXPECTED_DELTAS


def test_stream_frames_all_in_one_read(fake_upstream: FakeUpstream) -> None:
    fake_upstream.add("/model/*", event_stream_reply([b"".join(api_stream_frames())]))
    batches = run(fake_upstream, lambda p: _batches(p, STREAM_BODY))
    assert len(batches) == 1 and deltas(batches[0]) == EXPECTED_DELTAS


async def _batches(provider: BedrockProvider, body: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [batch async for batch in provider.chat_stream_batches(body, None)]


def api_stream_frames() -> list[bytes]:
    from portway_bedrock.testing import converse_events

    from portway.testing.script import ToolCall

    return list(converse_events(["Checking", ToolCall("get_weather", {"city": "Paris"}, "tooluse_1")], "tool_use",
                                {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}))


def test_stream_reasoning(fake_upstream: FakeUpstream) -> None:
    frames = [event("messageStart", {"role": "assistant"}),
              event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hm."}}}),
              event("contentBlockDelta", {"contentBlockIndex": 0,
                                          "delta": {"reasoningContent": {"signature": "sig"}}}),
              event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "Yes."}}),
              event("messageStop", {"stopReason": "end_turn"}),
              event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "cacheReadInputTokens": 3},
                                 "metrics": {"latencyMs": 1}})]
    fake_upstream.add("/model/*", event_stream_reply(frames))
    chunks = run(fake_upstream, lambda p: collect_stream(p, STREAM_BODY))
    assert deltas(chunks)[1:4] == [{"reasoning_content": "Hm."},
                                   {"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig"}]},
                                   {"content": "Yes."}]
    assert chunks[-1]["usage"]["prompt_tokens"] == 4


@pytest.mark.parametrize(("exception_type", "message", "kind", "status"), [
    ("throttlingException", "Too many tokens, please wait before trying again.", "rate_limit", 429),
    ("validationException", "Input is too long for requested model.", "context_length", 400),
    ("validationException", "messages.1: bad", "bad_request", 400),
    ("modelStreamErrorException", "The model stream failed.", "server_error", 424),
    ("internalServerException", "Internal error", "server_error", 500),
    ("serviceUnavailableException", "Bedrock is unable to process your request.", "overloaded", 503),
    ("modelTimeoutException", "Model timed out", "timeout", 408),
])
def test_exceptions_inside_a_200_stream(fake_upstream: FakeUpstream, exception_type: str, message: str, kind: str,
                                        status: int) -> None:
    frames = api_stream_frames()[:3] + [exception(exception_type, f"{message} ({SECRET})")]
    fake_upstream.add("/model/*", event_stream_reply(frames))
    seen: list[dict[str, Any]] = []

    async def action(provider: BedrockProvider) -> None:
        async for chunk in provider.chat_stream(STREAM_BODY, None):
            seen.append(chunk)

    error = failure(fake_upstream, action)
    assert (error.kind, error.status, error.code, error.provider) == (kind, status, exception_type, "br")
    assert message in error.message and "[redacted]" in error.message
    assert deltas(seen) == EXPECTED_DELTAS[:3]


def test_error_message_inside_a_stream(fake_upstream: FakeUpstream) -> None:
    from portway_bedrock.testing import frame

    failed = frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "broke"}, b"")
    fake_upstream.add("/model/*", event_stream_reply([api_stream_frames()[0], failed]))
    error = failure(fake_upstream, lambda p: collect_stream(p, STREAM_BODY))
    assert (error.kind, error.code) == ("server_error", "InternalFailure") and "broke" in error.message


@pytest.mark.parametrize(("damage", "kind", "words"), [
    (lambda frames: frames[:-1], "connection", "before its metadata event"),
    (lambda frames: frames[:-1] + [frames[-1][:20]], "connection", "inside a message"),
    (lambda frames: frames[:3] + [frames[3][:-1] + bytes([frames[3][-1] ^ 1])], "server_error", "fails its CRC"),
    (lambda frames: frames[:3] + [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": 5}})],
     "server_error", "text delta is not a string"),
    (lambda frames: frames[:3] + [event("contentBlockDelta", {"contentBlockIndex": 9,
                                                              "delta": {"toolUse": {"input": "{"}}})],
     "server_error", "did not start as a tool use"),
])
def test_broken_streams(fake_upstream: FakeUpstream, damage: Callable[[list[bytes]], list[bytes]], kind: str,
                        words: str) -> None:
    fake_upstream.add("/model/*", event_stream_reply(damage(api_stream_frames())))
    error = failure(fake_upstream, lambda p: collect_stream(p, STREAM_BODY))
    assert error.kind == kind and words in error.message


def test_stream_event_larger_than_the_cap(fake_upstream: FakeUpstream) -> None:
    big = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 5000}})
    fake_upstream.add("/model/*", event_stream_reply([api_stream_frames()[0], big]))
    error = failure(fake_upstream, lambda p: collect_stream(p, STREAM_BODY), max_event_bytes=4096)
    assert error.status == 502 and "max_event_bytes" in error.message


@pytest.mark.parametrize(("status", "exception_type", "message", "kind", "retry_after"), [
    (400, "ValidationException", "The provided model identifier is invalid.", "bad_request", None),
    (400, "ValidationException", "Input is too long for requested model.", "context_length", None),
    (400, "ServiceQuotaExceededException", "Your request exceeds the service quota.", "rate_limit", None),
    (403, "AccessDeniedException", "You don't have access to the model.", "permission", None),
    (403, "UnrecognizedClientException", "The security token included in the request is invalid.",
     "authentication", None),
    (404, "ResourceNotFoundException", "Model not found.", "not_found", None),
    (408, "ModelTimeoutException", "Model timed out.", "timeout", None),
    (424, "ModelErrorException", "The model returned an error.", "server_error", None),
    (429, "ThrottlingException", "Too many requests, please wait before trying again.", "rate_limit", "3"),
    (429, "ModelNotReadyException", "Model is not ready.", "rate_limit", None),
    (500, "InternalServerException", "Internal server error.", "server_error", None),
    (503, "ServiceUnavailableException", "Service unavailable.", "overloaded", None),
])
@pytest.mark.parametrize("stream", [False, True])
def test_http_errors(fake_upstream: FakeUpstream, stream: bool, status: int, exception_type: str, message: str,
                     kind: str, retry_after: str | None) -> None:
    fake_upstream.add("/model/*", error_reply(status, message, exception_type, retry_after))
    body = {"model": NOVA, "messages": [{"role": "user", "content": "hi"}]}
    error = failure(fake_upstream, (lambda p: collect_stream(p, body)) if stream else (lambda p: p.chat(body, None)))
    assert (error.kind, error.status, error.code, error.retry_after) == (kind, status, exception_type, retry_after)
    assert message in error.message and error.provider == "br"


def test_a_refused_signature_is_an_authentication_error_without_secrets(fake_upstream: FakeUpstream) -> None:
    fake(fake_upstream, say("never"), credentials={KEY_ID: ("another-secret-entirely", TOKEN)})
    error = failure(fake_upstream, lambda p: p.chat({"model": NOVA, "messages": [{"role": "user", "content": "x"}]},
                                                    None))
    assert (error.kind, error.status, error.code) == ("authentication", 403, "InvalidSignatureException")
    assert "does not match" in error.message


def test_an_echoed_signature_is_redacted(fake_upstream: FakeUpstream) -> None:
    def echo(request: Any) -> Reply:
        return error_reply(403, f"bad request {request.headers['authorization']} with {TOKEN}",
                           "InvalidSignatureException")

    fake_upstream.add("/model/*", echo)
    error = failure(fake_upstream, lambda p: p.chat({"model": NOVA, "messages": [{"role": "user", "content": "x"}]},
                                                    None))
    signature = fake_upstream.last.headers["authorization"].rpartition("Signature=")[2]
    assert signature not in error.message and "[redacted]" in error.message


# -- embeddings ----------------------------------------------------------------------------


def test_titan_embeddings(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream)
    body = {"model": "amazon.titan-embed-text-v2:0", "input": ["one two", "three"], "dimensions": 256,
            "normalize": False}
    out = run(fake_upstream, lambda p: p.embeddings(body, None))
    assert api.refusals == []
    sent = sorted((r.json()["inputText"], r.json()["dimensions"], r.json()["normalize"], r.raw_path)
                  for r in fake_upstream.requests)
    assert sent == [("one two", 256, False, "/model/amazon.titan-embed-text-v2%3A0/invoke"),
                    ("three", 256, False, "/model/amazon.titan-embed-text-v2%3A0/invoke")]
    assert all(r.headers["accept"] == "application/json" for r in fake_upstream.requests)
    assert [d["embedding"] for d in out["data"]] == [embedding_for("one two", 256, False),
                                                     embedding_for("three", 256, False)]
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}

    encoded = run(fake_upstream, lambda p: p.embeddings({"model": "amazon.titan-embed-text-v2:0", "input": "hi",
                                                         "encoding_format": "base64"}, None))
    vector = embedding_for("hi", 1024, True)
    unpacked = struct.unpack("<1024f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert unpacked == pytest.approx(vector, rel=1e-6)


def test_cohere_embeddings_in_batches_of_96(fake_upstream: FakeUpstream) -> None:
    api = fake(fake_upstream)
    texts = [f"text {i}" for i in range(100)]
    out = run(fake_upstream, lambda p: p.embeddings({"model": "cohere.embed-english-v3", "input": texts}, None))
    assert api.refusals == []
    batches = sorted((r.json() for r in fake_upstream.requests), key=lambda b: len(b["texts"]), reverse=True)
    assert [len(b["texts"]) for b in batches] == [96, 4]
    assert batches[0] == {"texts": texts[:96], "input_type": "search_document", "embedding_types": ["float"]}
    assert [d["embedding"] for d in out["data"]] == [embedding_for(t, 1024, False) for t in texts]
    assert out["usage"]["prompt_tokens"] == 200  # from x-amzn-bedrock-input-token-count

    run(fake_upstream, lambda p: p.embeddings({"model": "cohere.embed-english-v3", "input": "q",
                                               "input_type": "search_query"}, None),
        cohere_input_type="clustering")
    assert fake_upstream.last.json()["input_type"] == "search_query"


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "amazon.titan-embed-text-v2:0", "input": [[1, 2, 3]]}, "input"),
    ({"model": "cohere.embed-english-v3", "input": "x", "dimensions": 256}, "dimensions"),
    ({"model": "amazon.nova-pro-v1:0", "input": "x"}, "model"),
])
def test_embeddings_refused(fake_upstream: FakeUpstream, body: dict[str, Any], param: str) -> None:
    with pytest.raises(PortwayError) as caught:
        run(fake_upstream, lambda p: p.embeddings(body, None))
    assert (caught.value.kind, caught.value.param) == ("bad_request", param)
    assert fake_upstream.requests == []


def test_one_failed_embedding_call_fails_the_request(fake_upstream: FakeUpstream) -> None:
    fake_upstream.add("/model/*", error_reply(429, "Too many requests", "ThrottlingException"))
    error = failure(fake_upstream, lambda p: p.embeddings({"model": "amazon.titan-embed-text-v2:0",
                                                           "input": ["a", "b", "c"]}, None))
    assert error.kind == "rate_limit"


def test_registration() -> None:
    registered: list[type] = []
    portway_bedrock.register_providers(registered.append)
    assert registered == [BedrockProvider] and portway_bedrock.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "bedrock"]
    assert [e.value for e in entry] == ["portway_bedrock"]
    assert BedrockProvider.env_key == "AWS_BEARER_TOKEN_BEDROCK"

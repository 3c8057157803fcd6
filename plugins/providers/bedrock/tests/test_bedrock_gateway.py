"""Bedrock behind a real gateway, with the official openai and anthropic SDKs
as clients: Converse for OpenAI clients and for non-Claude models, Claude's
own Messages body through InvokeModel for Anthropic clients."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from portway_bedrock.testing import BedrockAPI, event_stream_reply, exception

from portway.testing import FakeUpstream
from portway.testing.script import call, say

KEY_ID = "AKIDGATEWAY"
SECRET = "gateway-secret-key-0123456789abcdef"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "amazon.nova-pro-v1:0"


def config(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"providers": {"br": {"type": "bedrock", "region": "us-east-1", "base_url": upstream.url,
                                 "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, **extra}}}


def fake(upstream: FakeUpstream, *script: Any) -> BedrockAPI:
    return BedrockAPI(list(script), credentials={KEY_ID: SECRET}).install(upstream)


def test_openai_sdk_chat_and_stream(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    api = fake(fake_upstream, call("get_weather", {"city": "Paris"}, text="Let me check."), say("Sunny."))
    client = gateway_server(config(fake_upstream)).openai_client()
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    stream = client.chat.completions.create(model=f"br/{CLAUDE}", messages=messages, tools=tools, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                        for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    first_call = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15

    messages += [{"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": first_call.id, "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": first_call.id, "content": "sunny, 21C"}]
    answer = client.chat.completions.create(model=f"br/{CLAUDE}", messages=messages, tools=tools)
    assert answer.choices[0].message.content == "Sunny."
    assert api.refusals == [] and api.calls[1].last_tool_result is not None
    assert api.calls[1].last_tool_result.text == "sunny, 21C"  # the id went back as Bedrock gave it
    assert [r.raw_path.rpartition("/")[2] for r in fake_upstream.requests] == ["converse-stream", "converse"]


def test_anthropic_sdk_on_claude_is_passed_through_invoke_model(fake_upstream: FakeUpstream,
                                                                gateway_server: Any) -> None:
    api = fake(fake_upstream, say("Hello from Claude."), call("Read", {"file_path": "/a"}))
    gateway = gateway_server(config(fake_upstream, beta=["configured-beta-2025-01-01"]))
    client = gateway.anthropic_client()
    message = client.messages.create(
        model=f"br/{CLAUDE}", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015"}]}})
    assert message.content[0].text == "Hello from Claude." and message.stop_reason == "end_turn"
    request = fake_upstream.last
    assert request.raw_path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    sent = request.json()
    assert "model" not in sent and "stream" not in sent
    assert sent["anthropic_version"] == "bedrock-2023-05-31"
    assert sent["anthropic_beta"] == ["configured-beta-2025-01-01", "context-management-2025-06-27"]
    assert "anthropic-beta" not in request.headers  # betas travel in the body on Bedrock
    assert sent["system"] == "Be brief." and sent["context_management"] == {
        "edits": [{"type": "clear_thinking_20251015"}]}

    # Streamed: Anthropic's own events, relayed as SSE (Bedrock's metrics key included).
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        response = http.post("/v1/messages", headers={"x-api-key": "unused", "anthropic-version": "2023-06-01"},
                             json={"model": f"br/{CLAUDE}", "max_tokens": 100, "stream": True,
                                   "messages": [{"role": "user", "content": "read /a"}]})
    assert response.status_code == 200
    assert fake_upstream.last.raw_path.endswith("%3A0/invoke-with-response-stream")
    events = [line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert '"amazon-bedrock-invocationMetrics"' in response.text and '"partial_json"' in response.text
    assert api.refusals == []


def test_anthropic_sdk_on_another_family_takes_converse(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    api = fake(fake_upstream, say("Hello from Nova."), say("Streamed Nova."))
    client = gateway_server(config(fake_upstream)).anthropic_client()
    message = client.messages.create(model=f"br/{NOVA}", max_tokens=50, messages=[{"role": "user", "content": "hi"}],
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    assert message.content[0].text == "Hello from Nova."
    assert fake_upstream.last.raw_path == "/model/amazon.nova-pro-v1%3A0/converse"
    assert fake_upstream.last.json()["inferenceConfig"] == {"maxTokens": 50}
    assert "additionalModelRequestFields" not in fake_upstream.last.json()  # thinking is Claude's alone
    with client.messages.stream(model=f"br/{NOVA}", max_tokens=50,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_text() == "Streamed Nova."
    assert api.refusals == []


def test_openai_sdk_embeddings(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    fake(fake_upstream)
    client = gateway_server(config(fake_upstream)).openai_client()
    out = client.embeddings.create(model="br/amazon.titan-embed-text-v2:0", input=["a", "b"], dimensions=256)
    assert [len(d.embedding) for d in out.data] == [256, 256] and out.usage.prompt_tokens == 2


def test_throttling_before_the_first_token_is_a_429(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    fake_upstream.add("/model/*", event_stream_reply([exception("throttlingException", "Too many tokens.")]))
    client = gateway_server(config(fake_upstream)).openai_client()
    with pytest.raises(openai.RateLimitError) as caught:
        list(client.chat.completions.create(model=f"br/{NOVA}", messages=[{"role": "user", "content": "hi"}],
                                            stream=True))
    assert "Too many tokens." in str(caught.value)
    claude = gateway_server(config(fake_upstream)).anthropic_client()
    with pytest.raises(anthropic.RateLimitError):
        with claude.messages.stream(model=f"br/{CLAUDE}", max_tokens=5,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            stream.get_final_text()


def test_count_tokens_for_claude_goes_to_bedrocks_count_tokens(fake_upstream: FakeUpstream,
                                                               gateway_server: Any) -> None:
    from portway.testing.anthropic_api import COUNT_BASE

    api = fake(fake_upstream)
    client = gateway_server(config(fake_upstream)).anthropic_client()
    messages: list[Any] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                           {"role": "user", "content": "count us"}]
    counted = client.messages.with_raw_response.count_tokens(
        model=f"br/{CLAUDE}", system="Be brief.", messages=messages,
        extra_headers={"anthropic-beta": "context-management-2025-06-27"})
    assert counted.parse().input_tokens == COUNT_BASE + 3
    assert counted.headers["x-portway-token-count"] == "provider"
    assert api.refusals == []
    assert fake_upstream.last.raw_path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens"
    assert api.counted == [{"anthropic_version": "bedrock-2023-05-31", "system": "Be brief.", "messages": messages,
                            "max_tokens": 1, "anthropic_beta": ["context-management-2025-06-27"]}]
    # another family has no count of Bedrock's: the gateway's estimate, said to be one
    estimated = client.messages.with_raw_response.count_tokens(model=f"br/{NOVA}", messages=messages)
    assert estimated.headers["x-portway-token-count"] == "estimate"
    assert len(fake_upstream.requests) == 1

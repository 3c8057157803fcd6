"""The DashScope adapter against the fake Model Studio compatible mode: the
regions, thinking models answered whole through a stream, the parameters it
maps and refuses, base64 embeddings, moderation and arrears errors."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from portway_dashscope import DashScopeConfig, DashScopeProvider
from portway_dashscope.testing import DashScopeAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.openai_chat import vector_of
from portway.testing.script import call, say

KEY = "sk-dashscope-test-0123456789"
ASK = [{"role": "user", "content": "What is 2+2?"}]
CHAT = "/compatible-mode/v1/chat/completions"


def qwen(upstream: FakeUpstream | None = None, **config: Any) -> DashScopeProvider:
    entry: dict[str, Any] = {"type": "dashscope", "api_key": KEY, **config}
    if upstream is not None:
        entry["base_url"] = upstream.url + "/compatible-mode/v1"
    return DashScopeProvider("qwen", DashScopeConfig.model_validate(entry))


def chat(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    body = {"model": "qwen-plus", "messages": ASK, **extra}
    return run_provider(qwen(upstream), lambda p: p.chat(body, None))


@pytest.mark.parametrize(("region", "host"), [(None, "dashscope-intl"), ("us", "dashscope-us"),
                                              ("cn", "dashscope")])
def test_regions_and_key_variable(monkeypatch: pytest.MonkeyPatch, region: str | None, host: str) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    config = DashScopeConfig(type="dashscope", **({"region": region} if region else {}))
    provider = DashScopeProvider("qwen", config)
    assert provider.base_url == f"https://{host}.aliyuncs.com/compatible-mode/v1"
    assert provider.auth_headers() == {"authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("extra", [{"model": "qwq-plus"}, {"model": "qwen3-32b"},
                                   {"model": "qwen-plus", "enable_thinking": True}])
def test_a_thinking_model_is_streamed_and_answered_whole(fake_upstream: FakeUpstream, extra: dict[str, Any]) -> None:
    api = DashScopeAPI([say("4", reasoning="2+2 is 4.", input_tokens=12, output_tokens=7)],
                       api_key=KEY).install(fake_upstream)
    answer = chat(fake_upstream, **extra)
    assert api.calls[0].body["stream"] is True
    assert answer["object"] == "chat.completion"
    choice = answer["choices"][0]
    assert choice["message"]["content"] == "4" and choice["message"]["reasoning_content"] == "2+2 is 4."
    assert choice["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 12 and answer["usage"]["completion_tokens"] == 7


def test_a_thinking_model_tool_call_is_assembled(fake_upstream: FakeUpstream) -> None:
    DashScopeAPI([call("get_time", {"tz": "UTC"})], api_key=KEY).install(fake_upstream)
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    answer = chat(fake_upstream, model="qwq-plus", tools=tools)
    [tool_call] = answer["choices"][0]["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "get_time", "arguments": '{"tz":"UTC"}'}
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


def test_thinking_turned_off_is_not_streamed(fake_upstream: FakeUpstream) -> None:
    api = DashScopeAPI([say("4")], api_key=KEY).install(fake_upstream)
    chat(fake_upstream, model="qwen3-32b", enable_thinking=False)
    assert not api.calls[0].body.get("stream")


def test_maps_roles_and_drops_user(fake_upstream: FakeUpstream) -> None:
    api = DashScopeAPI([say("ok")], api_key=KEY).install(fake_upstream)
    chat(fake_upstream, user="u-42", n=3, messages=[{"role": "developer", "content": "Short."}, *ASK])
    sent = api.calls[0].body
    assert "user" not in sent and sent["n"] == 3 and sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 5}, "n"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, "tool_choice"),
    ({"model": "qwq-plus", "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "messages[0].content[0]"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    DashScopeAPI([say("never")], api_key=KEY).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        chat(fake_upstream, **extra)
    assert info.value.param == param and fake_upstream.requests == []


def test_base64_embeddings_are_asked_as_float_and_encoded(fake_upstream: FakeUpstream) -> None:
    api = DashScopeAPI([], api_key=KEY).install(fake_upstream)
    body = {"model": "text-embedding-v4", "input": ["alpha", "beta"], "encoding_format": "base64", "dimensions": 8}
    answer = run_provider(qwen(fake_upstream), lambda p: p.embeddings(body, None))
    assert api.embedding_requests[0]["encoding_format"] == "float"
    for item, text in zip(answer["data"], ["alpha", "beta"], strict=True):
        raw = base64.b64decode(item["embedding"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(vector_of(text), abs=1e-6)
    assert body["encoding_format"] == "base64"  # the caller's body is left as it was


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, "data_inspection_failed", "content_filter"), (400, "DataInspectionFailed", "content_filter"),
    (400, "Arrearage", "billing"), (400, "invalid_parameter_error", "bad_request"),
    (429, "limit_requests", "rate_limit")])
def test_error_codes(fake_upstream: FakeUpstream, status: int, code: str, kind: str) -> None:
    message = f"{code}: Input data may contain inappropriate content. key={KEY}"
    fake_upstream.add(CHAT, json_reply({"error": {"code": code, "message": message, "param": None,
                                                  "type": "invalid_request_error"}, "request_id": "r-1"}, status))
    with pytest.raises(ProviderError) as info:
        chat(fake_upstream)
    assert (info.value.status, info.value.kind, info.value.code) == (status, kind, code)
    assert "inappropriate content" in info.value.message and KEY not in info.value.message


def test_thinking_model_whole_answer_through_the_gateway(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    """A non-streamed openai-SDK request, and an anthropic-SDK one on /v1/messages, for a model that only
    streams: each gets the whole answer, its thinking included."""
    api = DashScopeAPI([say("4", reasoning="2+2 is 4.")] * 2, api_key=KEY).install(fake_upstream)
    gateway = gateway_server({"providers": {"qwen": {"type": "dashscope", "api_key": KEY,
                                                     "base_url": fake_upstream.url + "/compatible-mode/v1"}}})
    reply = gateway.openai_client().chat.completions.create(model="qwen/qwq-plus", messages=ASK)
    assert reply.choices[0].message.content == "4"
    assert (reply.choices[0].message.model_extra or {}).get("reasoning_content") == "2+2 is 4."
    message = gateway.anthropic_client().messages.create(model="qwen/qwq-plus", max_tokens=100, messages=ASK)
    assert [(block.type, getattr(block, "thinking", None) or getattr(block, "text", None))
            for block in message.content] == [("thinking", "2+2 is 4."), ("text", "4")]
    assert [call.body["stream"] for call in api.calls] == [True, True]

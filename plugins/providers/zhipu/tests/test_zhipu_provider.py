"""The Zhipu adapter against the fake GLM API: the two hosts, the parameters
it renames / drops / refuses, ``tool_choice: none``, the usage chunk of a
stream, the business error codes."""

from __future__ import annotations

from typing import Any

import pytest
from portway_zhipu import ZhipuConfig, ZhipuProvider
from portway_zhipu.testing import ZhipuAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

KEY = "0123456789abcdef.zhipu-test-secret"
ASK = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]


def glm(upstream: FakeUpstream) -> ZhipuProvider:
    return ZhipuProvider("glm", ZhipuConfig(type="zhipu", api_key=KEY, base_url=upstream.url + "/api/paas/v4"))


def send(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    body = {"model": "glm-4.6", "messages": ASK, **extra}
    return run_provider(glm(upstream), lambda p: p.chat(body, None))


@pytest.mark.parametrize(("region", "url"), [(None, "https://open.bigmodel.cn/api/paas/v4"),
                                             ("intl", "https://api.z.ai/api/paas/v4")])
def test_hosts_and_key_variable(monkeypatch: pytest.MonkeyPatch, region: str | None, url: str) -> None:
    monkeypatch.setenv("ZHIPUAI_API_KEY", KEY)
    provider = ZhipuProvider("glm", ZhipuConfig(type="zhipu", **({"region": region} if region else {})))
    assert provider.base_url == url and provider.auth_headers() == {"authorization": f"Bearer {KEY}"}


def test_renames_and_drops(fake_upstream: FakeUpstream) -> None:
    api = ZhipuAPI([say("hi")], api_key=KEY).install(fake_upstream)
    send(fake_upstream, max_completion_tokens=64, user="user-0042", frequency_penalty=0.2, presence_penalty=0.1,
         parallel_tool_calls=False, stop=["END"], seed=7,
         messages=[{"role": "developer", "content": "Brief."}, {"role": "user", "content": "Hi", "name": "ann"}])
    sent = api.calls[0].body
    assert (sent["max_tokens"], sent["user_id"], sent["stop"], sent["seed"]) == (64, "user-0042", ["END"], 7)
    assert not {"max_completion_tokens", "user", "frequency_penalty", "presence_penalty",
                "parallel_tool_calls"} & set(sent)
    assert sent["messages"] == [{"role": "system", "content": "Brief."}, {"role": "user", "content": "Hi"}]


def test_tool_choice_none_sends_no_tools(fake_upstream: FakeUpstream) -> None:
    api = ZhipuAPI([say("no tools")], api_key=KEY).install(fake_upstream)
    send(fake_upstream, tools=TOOLS, tool_choice="none")
    assert "tools" not in api.calls[0].body and "tool_choice" not in api.calls[0].body


@pytest.mark.parametrize(("extra", "param"), [
    ({"stop": ["A", "B"]}, "stop"), ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "now"}}}, "tool_choice"),
    ({"model": "glm-4-flash", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, "messages[0].content[0]"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    ZhipuAPI([say("never")], api_key=KEY).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        send(fake_upstream, **extra)
    assert info.value.param == param and fake_upstream.requests == []


def test_stream_usage_comes_on_the_last_chunk_without_stream_options(fake_upstream: FakeUpstream,
                                                                     gateway_server: Any) -> None:
    """GLM takes no stream_options and sends the usage on its finish chunk; a client that asked for
    usage gets it (through the gateway) as OpenAI sends it, a chunk of its own, last."""
    api = ZhipuAPI([say("Hello there", input_tokens=5, output_tokens=3)], api_key=KEY).install(fake_upstream)
    gateway = gateway_server({"providers": {"glm": {"type": "zhipu", "api_key": KEY,
                                                    "base_url": fake_upstream.url + "/api/paas/v4"}}})
    chunks = list(gateway.openai_client().chat.completions.create(
        model="glm/glm-4.6", messages=ASK, stream=True, stream_options={"include_usage": True}))
    assert "stream_options" not in api.calls[0].body
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1] if c.choices) == "Hello there"


@pytest.mark.parametrize(("status", "code", "kind"), [
    (429, "1113", "billing"), (400, "1301", "content_filter"), (429, "1302", "rate_limit"),
    (400, "1214", "bad_request"), (401, "1002", "authentication")])
def test_business_error_codes(fake_upstream: FakeUpstream, status: int, code: str, kind: str) -> None:
    fake_upstream.add("/api/paas/v4/chat/completions",
                      json_reply({"error": {"code": code, "message": f"error {code} for key {KEY}"}}, status))
    with pytest.raises(ProviderError) as info:
        send(fake_upstream)
    assert (info.value.status, info.value.kind) == (status, kind)
    assert f"error {code}" in info.value.message and KEY not in info.value.message

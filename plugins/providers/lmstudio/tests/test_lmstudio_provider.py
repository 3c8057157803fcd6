"""The LM Studio adapter against the fake LM Studio server: the parameters
it renames, drops and refuses, ``reasoning`` mapped, the string error body."""

from __future__ import annotations

from typing import Any

import pytest
from portway_lmstudio import LMStudioProvider
from portway_lmstudio.testing import LMStudioAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, collect_stream, json_reply, run_provider
from portway.testing.script import say

MODEL = "qwen/qwen3-8b"
ASK = [{"role": "user", "content": "Hi"}]


def lmstudio(upstream: FakeUpstream, **config: Any) -> LMStudioProvider:
    return LMStudioProvider("lms", ProviderConfig.model_validate(
        {"type": "lmstudio", "base_url": upstream.url + "/v1", **config}))


def ask(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": ASK, **extra}
    return run_provider(lmstudio(upstream), lambda p: p.chat(body, None))


def test_defaults_need_no_key(fake_upstream: FakeUpstream) -> None:
    local = LMStudioProvider("lmstudio", ProviderConfig(type="lmstudio"))
    assert local.base_url == "http://127.0.0.1:1234/v1" and local.auth_headers() == {}
    api = LMStudioAPI([say("hello")]).install(fake_upstream)
    ask(fake_upstream)
    assert "authorization" not in api.calls[0].request.headers


def test_renames_and_drops(fake_upstream: FakeUpstream) -> None:
    api = LMStudioAPI([say("hello")]).install(fake_upstream)
    ask(fake_upstream, max_completion_tokens=50, user="u-1", parallel_tool_calls=False, n=1,
        messages=[{"role": "developer", "content": "Be brief."}, *ASK])
    sent = api.calls[0].body
    assert sent["max_tokens"] == 50
    assert not {"max_completion_tokens", "user", "parallel_tool_calls", "n"} & set(sent)
    assert sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}},
      "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    LMStudioAPI([say("never")]).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        ask(fake_upstream, **extra)
    assert info.value.param == param and fake_upstream.requests == []


def test_reasoning_is_mapped(fake_upstream: FakeUpstream) -> None:
    LMStudioAPI([say("4", reasoning="2+2=4")] * 2).install(fake_upstream)
    message = ask(fake_upstream)["choices"][0]["message"]
    assert message["reasoning_content"] == "2+2=4" and "reasoning" not in message
    chunks = run_provider(lmstudio(fake_upstream), lambda p: collect_stream(
        p, {"model": MODEL, "messages": ASK, "stream": True}))
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]) == "2+2=4"


def test_reasoning_content_setting_passes_as_it_is(fake_upstream: FakeUpstream) -> None:
    class SeparateReasoning(LMStudioAPI):  # the app's "separate reasoning_content" setting
        reasoning_field = "reasoning_content"

    SeparateReasoning([say("4", reasoning="2+2=4")]).install(fake_upstream)
    assert ask(fake_upstream)["choices"][0]["message"]["reasoning_content"] == "2+2=4"


def test_string_error_body_keeps_its_message(fake_upstream: FakeUpstream) -> None:
    fake_upstream.add("/v1/chat/completions", json_reply({"error": "No models loaded. Please load a model."}, 404))
    with pytest.raises(ProviderError) as info:
        ask(fake_upstream)
    assert info.value.kind == "not_found" and "No models loaded" in info.value.message

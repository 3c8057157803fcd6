"""The llama.cpp adapter against the fake llama-server: what it refuses
before sending (n > 1, a named tool_choice), the developer role, no key by
default, llama.cpp's error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from portway_llamacpp import LlamaCppProvider
from portway_llamacpp.testing import LlamaServerAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

ASK = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def adapter(upstream: FakeUpstream, **config: Any) -> LlamaCppProvider:
    entry = {"type": "llamacpp", "base_url": upstream.url + "/v1", **config}
    return LlamaCppProvider("cpp", ProviderConfig.model_validate(entry))


def chat(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    return run_provider(adapter(upstream, **config), lambda p: p.chat({"model": "m", "messages": ASK, **body}, None))


def test_defaults() -> None:
    local = LlamaCppProvider("llamacpp", ProviderConfig(type="llamacpp"))
    assert local.base_url == "http://127.0.0.1:8080/v1" and local.auth_headers() == {}


def test_no_key_and_a_key(fake_upstream: FakeUpstream) -> None:
    api = LlamaServerAPI([say("a")]).install(fake_upstream)
    chat(fake_upstream, {})
    assert "authorization" not in api.calls[0].request.headers
    keyed = LlamaServerAPI([say("b")], api_key="server-key-123456789")
    keyed.install(fake_upstream)
    chat(fake_upstream, {}, api_key="server-key-123456789")
    assert keyed.calls[0].request.headers["authorization"] == "Bearer server-key-123456789"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 3}, "n"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    api = LlamaServerAPI([say("never")]).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        chat(fake_upstream, extra)
    assert (info.value.kind, info.value.param) == ("bad_request", param)
    assert api.calls == [] and fake_upstream.requests == []


def test_n_1_and_required_tool_choice_go_through(fake_upstream: FakeUpstream) -> None:
    api = LlamaServerAPI([say("ok")]).install(fake_upstream)
    chat(fake_upstream, {"n": 1, "tools": [TOOL], "tool_choice": "required"})
    sent = api.calls[0].body
    assert "n" not in sent and sent["tool_choice"] == "required"


def test_developer_message_is_sent_as_system(fake_upstream: FakeUpstream) -> None:
    api = LlamaServerAPI([say("ok")]).install(fake_upstream)
    chat(fake_upstream, {"messages": [{"role": "developer", "content": "Be brief."}, *ASK]})
    assert api.calls[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(("status", "error_type", "kind"), [
    (400, "invalid_request_error", "bad_request"), (401, "authentication_error", "authentication"),
    (503, "unavailable_error", "overloaded"), (500, "server_error", "server_error")])
def test_error_bodies(fake_upstream: FakeUpstream, status: int, error_type: str, kind: str) -> None:
    message = "Loading model" if status == 503 else "the request could not be served"
    fake_upstream.add("/v1/chat/completions",
                      json_reply({"error": {"code": status, "message": message, "type": error_type}}, status))
    with pytest.raises(ProviderError) as info:
        chat(fake_upstream, {}, api_key="server-key-123456789")
    assert (info.value.status, info.value.kind, info.value.code) == (status, kind, error_type)
    assert message in info.value.message and "server-key-123456789" not in info.value.message

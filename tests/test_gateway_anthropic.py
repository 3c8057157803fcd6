"""The Anthropic side of the gateway, driven by the official SDKs over real
sockets: ``/v1/messages`` in front of any provider, and the ``anthropic``
provider behind the OpenAI API."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import openai
import pytest

from portway import plugins as plugin_loader
from portway.testing import FakeUpstream, json_reply, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.wire import ANTHROPIC_TOOL_STREAM

UPSTREAM_KEY = "sk-ant-upstream-secret-0123456789"
MOCK = {"providers": {"mock": {"type": "mock"}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfakeimage").decode()

WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def claude_config(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"providers": {"claude": {"type": "anthropic", "api_key": UPSTREAM_KEY, "base_url": upstream.url},
                          "mock": {"type": "mock"}}, **extra}


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 12, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 5}}


def sent(upstream: FakeUpstream, *, stream: bool, model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    """What the Anthropic fake received last, checked: the Messages path, the
    provider's own key and version, the model, and the stream flag."""
    request = upstream.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == UPSTREAM_KEY and request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers  # the client's credentials never travel upstream
    body = request.json()
    assert body["model"] == model and body.get("stream", False) is stream
    return body


# The exact event sequence of a streamed text + tool_use answer, pings included.
TOOL_STREAM = ANTHROPIC_TOOL_STREAM


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream() as up:
        yield up


# -- /v1/messages in front of the mock provider ---------------------------------


def test_messages_api_in_front_of_mock() -> None:
    with GatewayServer(MOCK) as gw:
        client = gw.anthropic_client()
        raw = client.messages.with_raw_response.create(
            model="mock/echo", max_tokens=100, system="be brief",
            messages=[{"role": "user", "content": "hello there"}])
        reply = raw.parse()
        assert raw.headers["x-portway-provider"] == "mock"
        assert raw.headers["x-request-id"].startswith("req_") and reply.id.startswith("msg_")
        assert reply.content[0].text == "Mock reply to: hello there"
        assert reply.stop_reason == "end_turn"
        # The mock counts words: "be brief" + "hello there" in, "Mock reply to: hello there" out.
        assert (reply.usage.input_tokens, reply.usage.output_tokens) == (4, 5)

        with client.messages.stream(model="mock/echo", max_tokens=100,
                                    messages=[{"role": "user", "content": "stream me"}]) as stream:
            pieces = list(stream.text_stream)
            final = stream.get_final_message()
        assert "".join(pieces) == "Mock reply to: stream me" == final.content[0].text
        assert pieces == ["Mock", " reply", " to:", " stream", " me"]  # it really streamed, word by word
        assert final.usage.output_tokens == 5


def test_messages_api_tools_round_trip_through_mock() -> None:
    with GatewayServer(MOCK) as gw:
        client = gw.anthropic_client()
        first = client.messages.create(model="mock/tools", max_tokens=100, tools=[WEATHER_TOOL],
                                       messages=[{"role": "user", "content": "weather in Paris?"}])
        assert first.stop_reason == "tool_use"
        call = next(block for block in first.content if block.type == "tool_use")
        assert call.name == "get_weather" and call.input == {"city": "mock"}
        second = client.messages.create(model="mock/tools", max_tokens=100, tools=[WEATHER_TOOL], messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ])
        assert second.content[0].text == "Mock result for: sunny"

        with client.messages.stream(model="mock/tools", max_tokens=100, tools=[WEATHER_TOOL],
                                    messages=[{"role": "user", "content": "weather?"}]) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert [b.input for b in final.content if b.type == "tool_use"] == [{"city": "mock"}]


def test_messages_api_errors_are_anthropic_shaped() -> None:
    with GatewayServer(MOCK) as gw:
        client = gw.anthropic_client()
        with pytest.raises(anthropic.RateLimitError) as rate:
            client.messages.create(model="mock/error-429", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert rate.value.body["type"] == "error"
        assert rate.value.body["error"]["type"] == "rate_limit_error"
        assert rate.value.response.headers["retry-after"] == "1"

        missing = httpx.post(gw.url + "/v1/messages", json={"model": "mock/echo", "messages": [
            {"role": "user", "content": "no max_tokens"}]})
        assert missing.status_code == 400
        body = missing.json()
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in body["error"]["message"]

        with pytest.raises(anthropic.NotFoundError) as unknown:
            client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert unknown.value.body["error"]["type"] == "not_found_error"

        broken = httpx.post(gw.url + "/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and broken.json()["type"] == "error"


def test_master_key_on_messages_accepts_bearer_and_x_api_key() -> None:
    config = {**MOCK, "auth": {"master_key": "pw-master-key-42"}}
    body = {"model": "mock/echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with GatewayServer(config) as gw:
        # The current SDK sends Authorization: Bearer; older clients send x-api-key.
        reply = gw.anthropic_client(api_key="pw-master-key-42").messages.create(**body)
        assert reply.content[0].text == "Mock reply to: hi"
        assert httpx.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": "pw-master-key-42"}).status_code == 200
        wrong = httpx.post(gw.url + "/v1/messages", json=body, headers={"x-api-key": "pw-master-key-43"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert "pw-master-key" not in wrong.text
        with pytest.raises(anthropic.AuthenticationError):
            gw.anthropic_client(api_key="wrong").messages.create(**body)


# -- the anthropic provider behind both APIs -------------------------------------


def test_anthropic_sdk_through_gateway_to_anthropic_upstream(upstream: FakeUpstream) -> None:
    upstream.add("/v1/messages", json_reply(message([{"type": "text", "text": "Bonjour"}])))
    with GatewayServer(claude_config(upstream)) as gw:
        reply = gw.anthropic_client(api_key="client-key").messages.create(
            model="claude/claude-sonnet-4-5", max_tokens=256, system="Answer in French",
            stop_sequences=["END"],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "Say hello"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}])
    assert reply.content[0].text == "Bonjour"
    assert reply.usage.input_tokens == 25 and reply.usage.cache_read_input_tokens == 5
    sent = upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY  # the provider's key, never the client's
    assert "client-key" not in str(sent.headers)
    assert sent.headers["anthropic-version"] == "2023-06-01"
    wire = sent.json()
    assert wire["system"] == "Answer in French"
    assert wire["max_tokens"] == 256 and wire["stop_sequences"] == ["END"]
    assert wire["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


def test_openai_sdk_streams_anthropic_tool_use(upstream: FakeUpstream) -> None:
    upstream.add("/v1/messages", sse_reply(TOOL_STREAM))
    with GatewayServer(claude_config(upstream)) as gw:
        client = gw.openai_client()
        stream = client.chat.completions.create(
            model="claude/claude-sonnet-4-5", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": "be helpful"}, {"role": "user", "content": "Weather in Paris?"}],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}}])
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(tc.function.arguments or "" for c in chunks if c.choices
                        for tc in (c.choices[0].delta.tool_calls or []))
    names = [tc.function.name for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])
             if tc.function and tc.function.name]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == "Let me check."
    assert names == ["get_weather"] and arguments == '{"city": "Paris"}'
    assert finish == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 25 and chunks[-1].usage.completion_tokens == 42
    wire = upstream.last.json()
    assert wire["stream"] is True and wire["system"] == "be helpful"
    assert wire["tools"][0]["input_schema"] == WEATHER_TOOL["input_schema"]


def test_anthropic_sdk_stream_through_gateway_to_anthropic_upstream(upstream: FakeUpstream) -> None:
    upstream.add("/v1/messages", sse_reply(TOOL_STREAM))
    with GatewayServer(claude_config(upstream)) as gw:
        with gw.anthropic_client().messages.stream(
                model="claude/claude-sonnet-4-5", max_tokens=100, tools=[WEATHER_TOOL],
                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
            final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].text == "Let me check."
    assert final.content[1].name == "get_weather" and final.content[1].input == {"city": "Paris"}
    assert final.usage.output_tokens == 42
    body = sent(upstream, stream=True)
    assert body["tools"] == [WEATHER_TOOL] and body["max_tokens"] == 100
    assert body["messages"] == [{"role": "user", "content": "Weather in Paris?"}]


def test_anthropic_upstream_errors_keep_status_and_never_leak_the_key(upstream: FakeUpstream) -> None:
    upstream.add("/v1/messages",
                 json_reply({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529),
                 json_reply({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, 429,
                            {"retry-after": "7"}),
                 json_reply({"type": "error", "error": {"type": "authentication_error",
                                                        "message": f"invalid x-api-key {UPSTREAM_KEY}"}}, 401))
    with GatewayServer(claude_config(upstream)) as gw:
        client = gw.anthropic_client()
        args = dict(model="claude/claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.InternalServerError) as overloaded:
            client.messages.create(**args)
        assert overloaded.value.status_code == 529
        assert overloaded.value.body["error"]["type"] == "overloaded_error"
        with pytest.raises(openai.RateLimitError) as limited:
            gw.openai_client().chat.completions.create(model=args["model"], messages=args["messages"])
        assert limited.value.response.headers["retry-after"] == "7"
        with pytest.raises(anthropic.AuthenticationError) as auth:
            client.messages.create(**args)
        assert UPSTREAM_KEY not in auth.value.response.text
        assert "claude" in auth.value.body["error"]["message"]
    assert len(upstream.requests) == 3  # one each: no retries configured
    assert sent(upstream, stream=False)["messages"] == [{"role": "user", "content": "x"}]


def test_mid_stream_error_arrives_as_an_error_event(upstream: FakeUpstream) -> None:
    events = TOOL_STREAM[:4] + [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]
    upstream.add("/v1/messages", sse_reply(events))
    with GatewayServer(claude_config(upstream)) as gw:
        with httpx.stream("POST", gw.url + "/v1/messages", json={
                "model": "claude/claude-sonnet-4-5", "max_tokens": 10, "stream": True,
                "messages": [{"role": "user", "content": "x"}]}) as response:
            assert response.status_code == 200
            text = response.read().decode()
        names = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
        assert names[-1] == "error" and "message_stop" not in names
        error = [line for line in text.splitlines() if line.startswith("data: ")][-1]
        assert httpx.Response(200, content=error[6:]).json()["error"] == {
            "type": "overloaded_error", "message": "provider 'claude': Overloaded"}
        # The official SDK turns it into an exception.
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            with gw.anthropic_client().messages.stream(model="claude/claude-sonnet-4-5", max_tokens=10,
                                                        messages=[{"role": "user", "content": "x"}]) as stream:
                list(stream.text_stream)
    assert len(upstream.requests) == 2 and sent(upstream, stream=True)["max_tokens"] == 10


# -- an uninstalled or disabled provider type ------------------------------------


def test_missing_provider_type_fails_clearly_and_the_rest_keeps_working(monkeypatch: pytest.MonkeyPatch) -> None:
    # An uninstalled distribution is one whose entry point is gone.
    installed = plugin_loader.entry_points()
    monkeypatch.setattr(plugin_loader, "entry_points", lambda: [ep for ep in installed if ep.name != "anthropic"])
    config = {"providers": {"claude": {"type": "anthropic", "api_key": "x"}, "mock": {"type": "mock"}}}
    with GatewayServer(config) as gw:
        client = gw.openai_client()
        with pytest.raises(openai.BadRequestError) as missing:
            client.chat.completions.create(model="claude/claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])
        assert "provider type 'anthropic' is not installed" in missing.value.body["message"]
        assert client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "still here"}]
        ).choices[0].message.content == "Mock reply to: still here"


def test_disabled_provider_plugin_says_so() -> None:
    config = {"providers": {"claude": {"type": "anthropic"}, "mock": {"type": "mock"}},
              "plugins": {"disable": ["anthropic"]}}
    with GatewayServer(config) as gw:
        with pytest.raises(anthropic.BadRequestError) as disabled:
            gw.anthropic_client().messages.create(model="claude/x", max_tokens=5,
                                                  messages=[{"role": "user", "content": "x"}])
        assert "disabled" in disabled.value.body["error"]["message"]


def test_anthropic_only_keys_do_not_reach_an_openai_upstream(upstream: FakeUpstream) -> None:
    upstream.json("/v1/chat/completions", {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    config = {"providers": {"oai": {"type": "openai", "api_key": "sk-x", "base_url": upstream.url + "/v1"}}}
    with GatewayServer(config) as gw:
        reply = gw.anthropic_client().messages.create(
            model="oai/gpt-4o-mini", max_tokens=20, extra_body={"top_k": 5},
            tools=[{**WEATHER_TOOL, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}])
    assert reply.content[0].text == "ok"
    wire = upstream.last.json()
    assert "top_k" not in wire
    assert "cache_control" not in str(wire)
    assert wire["max_tokens"] == 20 and wire["tools"][0]["function"]["name"] == "get_weather"



def test_thinking_blocks_never_reach_an_openai_upstream(upstream: FakeUpstream) -> None:
    """An Anthropic client replays its signed thinking in a tool loop; an
    OpenAI-format upstream would refuse the unknown field."""
    upstream.json("/v1/chat/completions", {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    config = {"providers": {"oai": {"type": "openai", "api_key": "sk-x", "base_url": upstream.url + "/v1"}}}
    with GatewayServer(config) as gw:
        gw.anthropic_client().messages.create(model="oai/gpt-4o-mini", max_tokens=20, tools=[WEATHER_TOOL], messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig-abc"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        ])
    wire = upstream.last.json()
    assistant = wire["messages"][1]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == "toolu_1"
    assert "thinking_blocks" not in assistant and "sig-abc" not in str(wire)
    assert wire["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}

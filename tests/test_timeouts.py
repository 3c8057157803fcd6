"""routing.timeout through a running gateway with the openai and anthropic
SDKs, against upstreams that hang on command: a slow answer or a slow first
chunk is a timeout that falls back; a stream that stalls or runs past its
total after it started ends with a clean error event, never a hang."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from portway import serialization
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.upstream import Gate, Reply, json_reply, sse_reply
from portway.testing.wire import openai_chunk

KEY = "sk-timeout-test-0123456789"
HI = [{"role": "user", "content": "hi"}]
SLOW = "/slow/v1/chat/completions"
GOOD = "/v1/chat/completions"
ANSWER = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "from good"}, "finish_reason": "stop"}]}


def config(upstream: FakeUpstream, timeout: dict[str, Any], *targets: str) -> dict[str, Any]:
    return {"providers": {"slow": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/slow/v1"},
                          "good": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
            "models": {"smart": {"targets": [{"provider": p, "model": "m"} for p in targets or ("slow", "good")]}},
            "routing": {"timeout": timeout, "breaker": {"enabled": False}}}


@pytest.fixture
def upstream():
    with FakeUpstream() as up:
        yield up


def stream_events(*texts: str) -> list[Any]:
    return [openai_chunk({"role": "assistant", "content": ""}), *(openai_chunk({"content": t}) for t in texts),
            openai_chunk({}, "stop")]


def test_an_answer_slower_than_the_limit_falls_back(upstream: FakeUpstream) -> None:
    gate = Gate()  # the slow upstream's body never comes until the test is over
    upstream.add(SLOW, Reply(chunks=[gate, serialization.dumps(ANSWER)]))
    upstream.add(GOOD, json_reply(ANSWER))
    with GatewayServer(config(upstream, {"total": "300ms"})) as server:
        raw = server.openai_client().chat.completions.with_raw_response.create(model="smart", messages=HI)
        gate.open()
    assert raw.parse().choices[0].message.content == "from good"
    assert raw.headers["x-portway-provider"] == "good"
    assert raw.headers["x-portway-fallback"] == "slow/m: timeout 504"


def test_a_stream_whose_first_chunk_is_late_falls_back_unseen(upstream: FakeUpstream) -> None:
    gate = Gate()
    events = stream_events("late")
    upstream.add(SLOW, sse_reply([events[0], gate, *events[1:]], done=True))  # the role, then nothing
    upstream.add(GOOD, sse_reply(stream_events("from ", "good"), done=True))
    with GatewayServer(config(upstream, {"first_token": "300ms"})) as server:
        with server.openai_client().chat.completions.with_streaming_response.create(
                model="smart", messages=HI, stream=True) as raw:
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            assert raw.headers["x-portway-provider"] == "good"
        gate.open()
    assert text == "from good"


@pytest.mark.parametrize("limits", [{"first_token": "300ms"}, {"total": "400ms"}])
def test_a_stream_that_stalls_after_it_started_ends_with_an_error_event(upstream: FakeUpstream,
                                                                       limits: dict[str, Any]) -> None:
    gate = Gate()
    events = stream_events("Hel", "lo")
    upstream.add(GOOD, sse_reply([*events[:2], gate, *events[2:]], done=True))  # "Hel", then it hangs
    with GatewayServer(config(upstream, limits, "good")) as server:
        client = server.openai_client()
        with pytest.raises(openai.APIError) as caught:
            text = ""
            for chunk in client.chat.completions.create(model="smart", messages=HI, stream=True):
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        gate.open()
    assert text == "Hel"  # what was sent before the stall reached the client
    assert "provider 'good': no next chunk within" in str(caught.value) and "routing.timeout" in str(caught.value)


def test_a_stall_ends_an_anthropic_stream_with_an_error_event_too(upstream: FakeUpstream) -> None:
    gate = Gate()
    events = stream_events("Hel", "lo")
    upstream.add(GOOD, sse_reply([*events[:2], gate, *events[2:]], done=True))
    with GatewayServer(config(upstream, {"first_token": "300ms"}, "good")) as server:
        client = server.anthropic_client()
        with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(
                model="smart", max_tokens=50, messages=HI) as stream:
            for _ in stream.text_stream:
                pass
        gate.open()
    assert "routing.timeout" in str(caught.value)


def test_an_aliass_timeout_overrides_the_default(upstream: FakeUpstream) -> None:
    gate = Gate()
    upstream.add(SLOW, Reply(chunks=[gate, serialization.dumps(ANSWER)]))
    cfg = config(upstream, {"total": "10m"}, "slow")
    cfg["models"]["smart"]["timeout"] = {"total": "300ms"}
    with GatewayServer(cfg) as server:
        with pytest.raises(openai.APIStatusError) as caught:
            server.openai_client().chat.completions.create(model="smart", messages=HI)
        gate.open()
    assert caught.value.status_code == 504 and "within 0.3 s" in caught.value.message


def test_routing_timeout_connect_is_every_providers_default_connect_limit() -> None:
    from portway import config as config_module
    from portway.config import ConfigError
    from portway.gateway import Gateway

    config = {"providers": {"p": {"type": "mock"}, "own": {"type": "mock", "connect_timeout": 7}},
              "routing": {"timeout": {"connect": "2s"}}}
    gateway = Gateway(config_module.parse(config, "portway.yaml"))
    assert gateway.providers["p"].config.connect_timeout == 2.0
    assert gateway.providers["own"].config.connect_timeout == 7.0  # a provider's own setting wins
    per_alias = {"providers": {"p": {"type": "mock"}},
                 "models": {"a": {"target": {"provider": "p", "model": "echo"}, "timeout": {"connect": "1s"}}}}
    with pytest.raises(ConfigError, match="timeout.connect is not per alias"):
        config_module.parse(per_alias, "portway.yaml")

"""Failures a routing layer must hide or render cleanly, through the running
gateway with the SDKs: a 200 stream that carries only an error event
(as Anthropic and Bedrock can send) falls back unseen; a connection dropped
after the first content ends the client's stream with an error event in its
own API's format, never a clean end."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.servers import RawUpstream
from portway.testing.upstream import sse_reply

HI = [{"role": "user", "content": "hi"}]
KEY = "sk-ant-failures-0123456789"


def chunk(text: str) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def test_a_200_stream_with_only_an_error_event_falls_back_unseen() -> None:
    with FakeUpstream() as upstream:
        upstream.add("/a/v1/messages", sse_reply(
            [("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})]))
        upstream.add("/b/v1/chat/completions", sse_reply([chunk("from "), chunk("b")], done=True))
        config = {"providers": {"a": {"type": "anthropic", "api_key": KEY, "base_url": upstream.url + "/a"},
                                "b": {"type": "openai", "api_key": "sk-b-0123456789", "base_url": upstream.url + "/b/v1"}},
                  "models": {"smart": {"targets": [{"provider": "a", "model": "claude-x"}, {"provider": "b", "model": "m"}]}},
                  "routing": {"breaker": {"enabled": False}}}
        with GatewayServer(config) as server:
            openai_stream = server.openai_client().chat.completions.with_raw_response.create(
                model="smart", messages=HI, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in openai_stream.parse() if c.choices)
            with server.anthropic_client().messages.stream(model="smart", max_tokens=50, messages=HI) as claude:
                claude_text = "".join(claude.text_stream)
        assert text == claude_text == "from b"
        assert "a/claude-x: overloaded" in openai_stream.headers["x-portway-fallback"]
        assert [r.path for r in upstream.requests].count("/a/v1/messages") == 2


def dropping_upstream() -> RawUpstream:
    """Answers 200, sends one SSE chunk of content, and hangs up mid-body."""
    event = b"data: " + json.dumps(chunk("Hel")).encode() + b"\n\n"
    return RawUpstream(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                       + f"{len(event):x}\r\n".encode() + event + b"\r\n")


@pytest.fixture
def dropped():
    with dropping_upstream() as raw:
        config = {"providers": {"p": {"type": "openai", "api_key": "sk-p-0123456789", "base_url": raw.url + "/v1"}},
                  "routing": {"breaker": {"enabled": False}}}
        with GatewayServer(config) as server:
            yield server


def test_a_connection_dropped_mid_stream_is_an_error_for_the_openai_sdk(dropped: GatewayServer) -> None:
    received = []
    with pytest.raises(openai.APIError) as info:
        for item in dropped.openai_client().chat.completions.create(model="p/m", messages=HI, stream=True):
            received.append(item.choices[0].delta.content if item.choices else "")
    assert "".join(c or "" for c in received) == "Hel"
    assert "p" in info.value.message
    raw = httpx.post(dropped.base_url + "/chat/completions", json={"model": "p/m", "messages": HI, "stream": True},
                     timeout=10).text
    assert raw.rstrip().endswith("}") and "[DONE]" not in raw and '"error"' in raw.split("data: ")[-1]


def test_a_connection_dropped_mid_stream_is_an_error_event_for_the_anthropic_sdk(dropped: GatewayServer) -> None:
    with pytest.raises(anthropic.APIError), dropped.anthropic_client().messages.stream(
            model="p/m", max_tokens=50, messages=HI) as stream:
        seen = []
        for text in stream.text_stream:
            seen.append(text)
    assert "".join(seen) == "Hel"
    raw = httpx.post(dropped.url + "/v1/messages", json={"model": "p/m", "messages": HI, "max_tokens": 50,
                                                        "stream": True}, timeout=10).text
    assert "event: error" in raw and "message_stop" not in raw

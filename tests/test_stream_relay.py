"""A stream's chunks reach the client as the upstream sent them when nothing
changes them: the upstream's own JSON bytes, framed again, not the chunks
encoded again.  Whatever changes a chunk (a hook, the usage the gateway
asked for on its own account, a quirk) makes it encoded again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import portway
from portway import sse
from portway.testing import FakeUpstream, Reply
from portway.testing.gateway import GatewayServer

KEY = "sk-relay-test-0123456789"
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]

# Spelled as no encoder of the gateway's would: spaces, an escaped é, key order of its own.
ROLE = b'{"id": "chatcmpl-R", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}], "usage": null}'  # noqa: E501
TEXT = b'{"choices": [{"index": 0, "delta": {"content": "caf\\u00e9"}, "finish_reason": null}], "id": "chatcmpl-R", "object": "chat.completion.chunk", "created": 1, "model": "m", "usage": null}'  # noqa: E501
STOP = b'{"id": "chatcmpl-R", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": null}'  # noqa: E501
USAGE = b'{"id": "chatcmpl-R", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}'  # noqa: E501
EVENTS = [ROLE, TEXT, STOP, USAGE]


def whole(*events: bytes) -> bytes:
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def serve(upstream: FakeUpstream, plugins: list[tuple[str, Any]] | None = None) -> GatewayServer:
    config = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}}}
    return GatewayServer(config, plugins=plugins)


def stream_body(server: GatewayServer, include_usage: bool = True) -> bytes:
    body: dict[str, Any] = {"model": "oai/gpt-4o-mini", "messages": HI, "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    response = httpx.post(server.url + CHAT, json=body, timeout=30)
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("reads", ["one read", "a read per event"])
def test_an_unchanged_stream_reaches_the_client_as_the_upstream_sent_it(upstream: FakeUpstream, reads: str) -> None:
    chunks = [whole(*EVENTS)] if reads == "one read" else [b"data: " + e + b"\n\n" for e in EVENTS] + [
        b"data: [DONE]\n\n"]
    upstream.add(CHAT, Reply(chunks=chunks, content_type="text/event-stream"))
    with serve(upstream) as server:
        assert stream_body(server) == whole(*EVENTS)


def test_a_stream_the_gateway_asked_usage_for_is_encoded_again_without_it(upstream: FakeUpstream) -> None:
    upstream.add(CHAT, Reply(chunks=[whole(*EVENTS)], content_type="text/event-stream"))
    with serve(upstream) as server:
        body = stream_body(server, include_usage=False)
    assert upstream.last.json()["stream_options"] == {"include_usage": True}  # asked on its own account
    events = [e.json() for e in sse.SSEDecoder().feed(body) if e.raw != b"[DONE]"]
    assert [e["choices"][0]["delta"].get("content") for e in events] == ["", "café", None]
    assert all("usage" not in e for e in events)  # not even the upstream's "usage": null
    assert b'"caf\\u00e9"' not in body and b", " not in body  # encoded by the gateway


def test_a_chunk_a_hook_changes_is_sent_as_changed(upstream: FakeUpstream) -> None:
    class Shout:
        @portway.hookimpl
        def post_chunk(self, ctx: Any, chunk: dict[str, Any]) -> None:
            for choice in chunk.get("choices") or ():
                if choice["delta"].get("content"):
                    choice["delta"]["content"] = choice["delta"]["content"].upper()

    upstream.add(CHAT, Reply(chunks=[whole(*EVENTS)], content_type="text/event-stream"))
    with serve(upstream, plugins=[("shout", Shout())]) as server:
        body = stream_body(server)
    events = [e.json() for e in sse.SSEDecoder().feed(body) if e.raw != b"[DONE]"]
    assert [e["choices"][0]["delta"].get("content") for e in events if e["choices"]] == ["", "CAFÉ", None]
    assert events[-1]["usage"]["total_tokens"] == 5


def test_an_event_of_several_data_lines_is_framed_again_as_one(upstream: FakeUpstream) -> None:
    split = TEXT.replace(b'"delta": ', b'"delta":\ndata: ')  # one JSON value over two data lines
    reply = b"data: " + ROLE + b"\n\ndata: " + split + b"\n\ndata: " + STOP + b"\n\ndata: " + USAGE + b"\n\n"
    upstream.add(CHAT, Reply(chunks=[reply + b"data: [DONE]\n\n"], content_type="text/event-stream"))
    with serve(upstream) as server:
        body = stream_body(server)
    events = [e for e in sse.SSEDecoder().feed(body)]
    assert all(b"\n" not in e.raw for e in events)
    assert [e.json()["choices"][0]["delta"].get("content") for e in events[:3]] == ["", "café", None]
    assert events[-1].raw == b"[DONE]"


def test_encode_all_frames_a_relayed_batch_from_its_own_bytes() -> None:
    items = [{"a": 1}, {"b": "é"}]
    relayed = sse.Relayed(items, [b'{"a": 1}', b'{"b": "\\u00e9"}'])
    assert relayed == items
    assert sse.encode_all(relayed) == b'data: {"a": 1}\n\ndata: {"b": "\\u00e9"}\n\n'
    assert sse.encode_all(list(relayed)) == b'data: {"a":1}\n\ndata: {"b":"\xc3\xa9"}\n\n'
    assert sse.encode_all(sse.Relayed([], [])) == b""


def test_batches_joined_stay_relayed_only_when_each_was() -> None:
    one, two = sse.Relayed([{"a": 1}], [b'{"a": 1}']), sse.Relayed([{"b": 2}], [b'{"b": 2}'])
    joined = sse.Relayed.joined([one, two])
    assert type(joined) is sse.Relayed and joined == [{"a": 1}, {"b": 2}] and joined.raw == [b'{"a": 1}', b'{"b": 2}']
    assert sse.Relayed.joined([one]) is one
    mixed = sse.Relayed.joined([one, [{"b": 2}]])
    assert type(mixed) is list and mixed == [{"a": 1}, {"b": 2}]

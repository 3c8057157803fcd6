"""The upstream seam's rules as a client of the gateway sees them: the
official ``openai`` SDK, a real gateway, and fake upstreams, over sockets.

Redirects, a full connection pool, the end of a stream whose upstream keeps
its body open, quota errors, and statuses HTTP does not define.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest

import portway
from portway import serialization
from portway import upstream as upstream_module
from portway.testing import FakeUpstream, Gate, Reply, json_reply, sse_reply
from portway.testing.wire import openai_chunk

KEY = "sk-test-secret-123456"
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
TRANSPORTS = ["httptools", "aiohttp", "httpx"]
#: Bounds a client that would hang if the behaviour under test were broken.
HANG = 10.0


def config(upstream: FakeUpstream, transport: str = "httptools", **provider: Any) -> dict[str, Any]:
    return {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1",
                                  "http_client": transport, **provider}}}


@pytest.fixture(scope="module")
def shared_upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream() as first, FakeUpstream() as second:
        yield first, second


@pytest.fixture
def upstream(shared_upstreams: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    """A fake upstream shared by the module (reset for each test); tests
    that watch how a stream ends use ``fake_upstream``, a fresh one."""
    return shared_upstreams[0].reset()


@pytest.fixture
def elsewhere(shared_upstreams: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    return shared_upstreams[1].reset()


class Finished:
    """Records what ``request_finished`` saw of each request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int]] = []

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.seen.append((ctx.model, ctx.attempts, ctx.status))


# -- redirects ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_redirect_is_a_502_and_the_key_goes_nowhere_else(
        upstream: FakeUpstream, elsewhere: FakeUpstream, gateway_server: Any, transport: str, stream: bool) -> None:
    elsewhere.json(CHAT, {"stolen": True})
    upstream.add(CHAT, Reply(status=307, headers={"location": elsewhere.url + CHAT + "?token=sk-in-location"}))
    client = gateway_server(config(upstream, transport)).openai_client()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI, stream=stream)
    assert elsewhere.requests == []
    assert len(upstream.requests) == 1
    assert info.value.status_code == 502
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": f"provider 'oai': upstream answered HTTP 307, a redirect to {elsewhere.url}; the gateway does "
                   "not follow redirects (they would carry its credentials elsewhere): check base_url",
        "type": "api_error", "param": None, "code": None}
    assert info.value.response.headers["x-portway-provider"] == "oai"


# -- the connection pool ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_full_pool_is_a_503_not_retried_but_fallen_back_from(upstream: FakeUpstream, gateway_server: Any,
                                                             transport: str) -> None:
    gates = [Gate(), Gate()]
    held = [sse_reply([openai_chunk({"content": "held"}), gate, openai_chunk({}, "stop")], done=True)
            for gate in gates]
    upstream.add(CHAT, *held, json_reply({"reached": "the upstream"}))
    cfg = config(upstream, transport, max_connections=2, pool_timeout=0.2)
    cfg["providers"]["mock"] = {"type": "mock"}
    cfg["models"] = {"pooled": {"targets": [{"provider": "oai", "model": "gpt-4o-mini"},
                                            {"provider": "mock", "model": "echo"}]}}
    cfg["routing"] = {"retry": {"attempts": 4, "backoff": {"initial": 0}}}
    finished = Finished()
    client = gateway_server(cfg, plugins=[("finished", finished)]).openai_client()

    streams = [client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI, stream=True) for _ in gates]
    # Both pooled connections now carry a stream the upstream holds open.
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI)
    assert info.value.status_code == 503
    assert info.value.body["message"] == (  # type: ignore[index]
        "the gateway's own connection pool for provider 'oai' is full "
        "(max_connections=2; none came free within pool_timeout=0.2 s)")
    assert finished.seen == [("oai/gpt-4o-mini", 1, 503)]  # no retry into the same full pool

    fallback = client.chat.completions.create(model="pooled", messages=HI)
    assert fallback.choices[0].message.content == "Mock reply to: hi"
    assert finished.seen[-1] == ("pooled", 2, 200)

    for gate in gates:
        gate.open()
    for stream in streams:
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "held"
    assert len(upstream.requests) == 2  # the refused requests never reached the upstream


# -- the end of a stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_done_reaches_the_client_while_the_upstream_still_holds_its_body_open(
        fake_upstream: FakeUpstream, gateway_server: Any, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "DRAIN_SECONDS", 60.0)  # a drain before [DONE] would time the client out
    gate = Gate()
    fake_upstream.sse(CHAT, [openai_chunk({"content": "all"}), openai_chunk({}, "stop"), "[DONE]", gate])
    client = gateway_server(config(fake_upstream, transport)).openai_client(timeout=HANG)

    chunks = list(client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI, stream=True))

    # The SDK stops at the gateway's [DONE]: the client has its end of stream...
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, "stop"]
    gate.wait_reached()
    # ...while the upstream has not ended its body yet (the gate is still closed).
    assert fake_upstream.streams_finished == 0
    if transport != "httpx":  # the connection is still open, draining in the background (httpx drops it)
        assert not fake_upstream.disconnected.is_set()
    gate.open()


# -- error answers -----------------------------------------------------------------------------------------------


def test_a_429_for_insufficient_quota_is_billing_and_not_retried(upstream: FakeUpstream,
                                                                 gateway_server: Any) -> None:
    quota = {"message": "You exceeded your current quota, please check your plan and billing details.",
             "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
    upstream.json(CHAT, {"error": quota}, status=429)
    cfg = {**config(upstream), "routing": {"retry": {"attempts": 3, "backoff": {"initial": 0}}}}
    client = gateway_server(cfg).openai_client()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI)
    assert info.value.status_code == 429
    assert info.value.body == {**quota, "message": "provider 'oai': " + quota["message"]}  # type: ignore[comparison-overlap]
    assert len(upstream.requests) == 1  # a retry cannot buy quota


@contextmanager
def raw_upstream(status_line: bytes, body: bytes) -> Iterator[str]:
    """An upstream that answers every request with exactly these bytes (no
    server framework would send a status HTTP does not define)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, rest = request.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(rest) < length:
                    rest += conn.recv(65536)
                conn.sendall(status_line + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n" % len(body) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize(("transport", "stream"), [("httptools", False), ("aiohttp", True), ("httpx", True)])
def test_an_upstream_status_http_does_not_define_is_a_502(gateway_server: Any, transport: str, stream: bool) -> None:
    body = serialization.dumps({"error": {"message": "odd", "type": "server_error"}})
    with raw_upstream(b"HTTP/1.1 999 Odd", body) as url:
        cfg = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": url + "/v1",
                                     "http_client": transport}}}
        client = gateway_server(cfg).openai_client()
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI, stream=stream)
    assert info.value.status_code == 502
    assert info.value.body["message"] == (  # type: ignore[index]
        "provider 'oai': upstream answered with HTTP status 999, not an HTTP error status: odd")

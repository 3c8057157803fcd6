"""How responses leave the server: what one turn of the event loop writes
goes out in one write (see :class:`portway.serving.LingeringTransport`).

The unit tests drive the transport wrapper against a recording stand-in for
the socket's transport; the end-to-end ones serve real requests and count
the writes that reach the real transport of each connection.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import portway
from portway import serving
from portway.testing import FakeUpstream, Reply, sse_reply
from portway.testing.gateway import GatewayServer
from portway.testing.wire import openai_chunk

KEY = "sk-serving-test-0123456789"
HI = [{"role": "user", "content": "hi"}]


class Recorded:
    """A transport that records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append("write")
        self.writes.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        self.calls.append("writelines")
        self.writes.append(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def get_write_buffer_size(self) -> int:
        return 7

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def wrapped(receiving: bool = False) -> tuple[serving.LingeringTransport, Recorded]:
    real = Recorded()
    return serving.LingeringTransport(real, lambda: receiving, asyncio.get_running_loop()), real  # type: ignore[arg-type]


def test_what_one_turn_writes_leaves_in_one_write_at_its_end() -> None:
    async def main() -> None:
        transport, real = wrapped()
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        transport.writelines([b"-", b"more"])
        assert real.writes == []  # nothing yet: the turn is not over
        assert transport.get_write_buffer_size() == 7 + 19 + 4 + 5
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody-more"] and real.calls == ["writelines"]
        transport.write(b"next turn")
        await asyncio.sleep(0)
        assert real.writes[1:] == [b"next turn"] and real.calls[1:] == ["write"]  # one piece: a plain write
        await asyncio.sleep(0)
        assert len(real.writes) == 2  # nothing held, nothing sent again

    asyncio.run(main())


def test_a_close_sends_what_is_held_first_and_an_abort_drops_it() -> None:
    async def main() -> None:
        transport, real = wrapped()
        transport.write(b"answer")
        transport.close()
        assert real.writes == [b"answer"] and real.calls == ["write", "close"]
        await asyncio.sleep(0)
        assert real.writes == [b"answer"]

        transport, real = wrapped(receiving=True)  # a lingering close: the answer, then the FIN
        transport.write(b"413 answer")
        transport.close()
        assert real.calls == ["write", "write_eof"] and real.writes == [b"413 answer"]

        transport, real = wrapped()
        transport.write(b"lost")
        transport.abort()
        await asyncio.sleep(0)
        assert real.writes == [] and real.calls == ["abort"]

    asyncio.run(main())


def test_nothing_is_written_to_a_transport_that_closed_meanwhile() -> None:
    async def main() -> None:
        transport, real = wrapped()
        transport.write(b"too late")
        real.closing = True  # the connection was lost before the turn ended
        await asyncio.sleep(0)
        assert real.writes == []

    asyncio.run(main())


# -- end to end ---------------------------------------------------------------------


class Counted:
    """The real transport of a connection, counting the writes that reach it."""

    def __init__(self, transport: Any, log: list[int]) -> None:
        self._transport = transport
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        self._log.append(len(data))
        self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        lines = list(lines)
        self._log.append(sum(map(len, lines)))
        self._transport.writelines(lines)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each write that reaches a connection's socket transport."""
    log: list[int] = []
    made = serving.GatewayProtocol.connection_made

    def connection_made(self: Any, transport: Any) -> None:
        made(self, Counted(transport, log))

    monkeypatch.setattr(serving.GatewayProtocol, "connection_made", connection_made)
    return log


@pytest.fixture
def gateway(writes: list[int]) -> Iterator[tuple[GatewayServer, FakeUpstream]]:
    with FakeUpstream() as upstream:
        config = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}},
                  "models": {"fast": {"target": {"provider": "oai", "model": "gpt-4o-mini"}}}}
        with GatewayServer(config) as server:
            yield server, upstream


ANSWER = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def test_an_answer_leaves_in_one_write(gateway: Any, writes: list[int]) -> None:
    server, upstream = gateway
    upstream.json("/v1/chat/completions", ANSWER)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=HI)  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content == "hello"
    assert len(writes) == 1, writes  # status line, headers and body together


def test_a_stream_read_in_one_piece_leaves_in_two_writes(gateway: Any, writes: list[int]) -> None:
    server, upstream = gateway
    events = [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "he"}),
              openai_chunk({"content": "llo"}), openai_chunk({}, "stop")]
    whole = b"".join(b"data: " + httpx.Response(200, json=e).content + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    upstream.add("/v1/chat/completions", Reply(chunks=[whole], content_type="text/event-stream"))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="fast", messages=HI, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello"
    # The headers with the events at once (the first byte does not wait for the
    # stream's end), then [DONE] with the chunked end marker: two writes, not four.
    done = len(b"e\r\n" + b"data: [DONE]\n\n" + b"\r\n" + b"0\r\n\r\n")
    assert len(writes) == 2 and writes[0] > len(whole) and writes[1] == done, writes


def test_a_stream_that_arrives_in_pieces_leaves_as_it_arrives(gateway: Any, writes: list[int]) -> None:
    server, upstream = gateway
    events = [openai_chunk({"role": "assistant", "content": "he"}), openai_chunk({"content": "llo"}),
              openai_chunk({}, "stop")]
    upstream.add("/v1/chat/completions", sse_reply(events, done=True, delay=0.05))
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="fast", messages=HI, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello"
    assert 3 <= len(writes) <= 4, writes  # each piece when it came (never held for the next)


def test_pipelined_requests_are_answered_whole_and_in_order(gateway: Any) -> None:
    server, _ = gateway
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"".join(b"GET /health?n=%d HTTP/1.1\r\nhost: x\r\n\r\n" % n for n in range(3)))
        answer = b""
        while answer.count(b"HTTP/1.1 ") < 3 or not answer.endswith(b"}"):
            more = sock.recv(65536)
            assert more, answer
            answer += more
    parts = answer.split(b"HTTP/1.1 ")[1:]
    assert len(parts) == 3 and all(p.startswith(b"200 OK") and p.endswith(b"}") for p in parts)


class HeldFinish:
    """A ``request_finished`` hook that waits until the client says it has
    its whole answer: it can only be released if the answer left first."""

    def __init__(self) -> None:
        self.client_has_answer = threading.Event()
        self.released: list[bool] = []

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.released.append(self.client_has_answer.wait(10))


def test_a_streams_request_finished_work_runs_after_its_last_byte() -> None:
    held = HeldFinish()
    events = [openai_chunk({"role": "assistant", "content": "hel"}), openai_chunk({"content": "lo"}),
              openai_chunk({}, "stop")]
    with FakeUpstream() as upstream:
        upstream.add("/v1/chat/completions", sse_reply(events, done=True))
        config = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": upstream.url + "/v1"}}}
        with GatewayServer(config, plugins=[("held", held)]) as server:
            # The whole body, to the chunked end marker: the response is over.
            with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=30,
                              json={"model": "oai/gpt-4o-mini", "messages": HI, "stream": True}) as response:
                body = response.read()
            held.client_has_answer.set()
            deadline = time.monotonic() + 15
            while not held.released and time.monotonic() < deadline:
                time.sleep(0.01)
    assert body.endswith(b"data: [DONE]\n\n") and b'"lo"' in body
    assert held.released == [True]


class Seen:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    @portway.hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.statuses.append(ctx.status)


def test_an_answers_request_finished_work_is_done_when_the_client_has_it() -> None:
    """Not a stream: the request is finished just before its answer is sent,
    so what a plugin records is there as soon as the client has the answer."""
    seen = Seen()
    with FakeUpstream() as other:
        other.json("/v1/chat/completions", ANSWER)
        config = {"providers": {"oai": {"type": "openai", "api_key": KEY, "base_url": other.url + "/v1"}}}
        with GatewayServer(config, plugins=[("seen", seen)]) as server:
            client = server.openai_client()
            for n in range(20):
                client.chat.completions.create(model="oai/gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
                assert seen.statuses == [200] * (n + 1)

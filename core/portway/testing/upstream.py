"""A fake provider upstream that speaks over a real socket.

Provider tests script the exact wire answer (status, headers, JSON, SSE or
NDJSON framing, error bodies) and then assert on the request the adapter
sent::

    with FakeUpstream() as up:
        up.json("/v1/chat/completions", {...})
        ...  # point the adapter at up.url + "/v1"
        assert up.requests[0].headers["authorization"] == "Bearer sk-test"
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from portway import serialization, sse
from portway.testing.servers import ThreadedServer


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    #: The client's (host, port): the same port twice means a reused connection.
    peer: tuple[str, int] | None = None
    #: ``time.monotonic()`` when the request arrived (for lower bounds: a backoff waited at least this).
    at: float = field(default_factory=time.monotonic)
    #: The path as it came on the wire, escapes and all (``path`` is decoded).
    raw_path: str = ""

    def json(self) -> Any:
        return serialization.loads(self.body)


class Gate:
    """A pause in a scripted stream, for tests that must prove an order of
    events rather than hope for it.  Put it among a reply's ``chunks``: the
    fake sends the chunks before it, sets :attr:`reached`, and sends the rest
    only once the test calls :meth:`open` (a read split exactly there, or a
    body held open for as long as the test needs)."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def wait_reached(self, timeout: float = 10.0) -> None:
        if not self.reached.wait(timeout):
            raise AssertionError("the fake upstream never reached the gate")

    async def _pass(self, patience: float = 30.0) -> None:
        self.reached.set()
        deadline = time.monotonic() + patience
        while not self._open.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.002)


@dataclass
class Reply:
    """One scripted answer.  ``chunks`` makes it a streamed body, sent with
    ``delay`` seconds between chunks (and held at each :class:`Gate`).
    ``gzip`` sends the body gzip-encoded (``content-encoding: gzip``), a
    streamed one flushed chunk by chunk.  ``disconnected`` is set, like
    :attr:`FakeUpstream.disconnected`, when the client goes away before this
    streamed body is sent in full (a wire fake watches its own answers)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes | Gate] | None = None
    delay: float = 0.0
    content_type: str = "application/json"
    gzip: bool = False
    disconnected: threading.Event | None = None


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=serialization.dumps(data), headers=headers or {})


def sse_reply(
    events: Iterable[Any], *, status: int = 200, delay: float = 0.0, headers: dict[str, str] | None = None,
    done: bool = False, line_end: str = "\n", gzip: bool = False, disconnected: threading.Event | None = None,
) -> Reply:
    """An SSE body.  Each event is a dict (JSON data), a ``(event_name,
    dict)`` pair, raw ``bytes`` (sent as they are), a ``str`` (sent as a
    ``data:`` line as is), or a :class:`Gate`.  ``done`` appends OpenAI's
    ``data: [DONE]``."""
    chunks: list[bytes | Gate] = []
    for event in events:
        if isinstance(event, bytes | Gate):
            chunks.append(event)
            continue
        name, data = event if isinstance(event, tuple) else (None, event)
        payload = data if isinstance(data, str) else serialization.dumps_str(data)
        text = (f"event: {name}{line_end}" if name else "") + f"data: {payload}{line_end}{line_end}"
        chunks.append(text.encode())
    if done:
        chunks.append(f"data: [DONE]{line_end}{line_end}".encode())
    return Reply(status=status, chunks=chunks, delay=delay, headers=headers or {}, content_type="text/event-stream",
                 gzip=gzip, disconnected=disconnected)


def ndjson_reply(lines: Iterable[Any], *, status: int = 200, delay: float = 0.0) -> Reply:
    chunks = [serialization.dumps(line) + b"\n" for line in lines]
    return Reply(status=status, chunks=chunks, delay=delay, content_type="application/x-ndjson")


Handler = Callable[[RecordedRequest], Reply]


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], list[Reply | Handler]] = {}
        self.disconnected = threading.Event()
        self.streams_finished = 0
        self._gates: list[Gate] = []
        self._answer_all: Reply | Handler | None = None
        self._server = ThreadedServer(Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])]))

    @property
    def url(self) -> str:
        return self._server.url

    # -- scripting ---------------------------------------------------------

    def add(self, path: str, *replies: Reply | Handler, method: str = "POST") -> FakeUpstream:
        """Answer ``method path`` with ``replies`` in turn; the last one repeats.
        A ``path`` that ends in ``*`` answers every path that starts with the
        rest (for APIs with ids in the path: ``/model/*``), unless a route
        names the path exactly."""
        self._routes[(method, path)] = list(replies)
        return self

    def json(self, path: str, data: Any, status: int = 200, headers: dict[str, str] | None = None,
             method: str = "POST") -> FakeUpstream:
        return self.add(path, json_reply(data, status, headers), method=method)

    def sse(self, path: str, events: Iterable[Any], **options: Any) -> FakeUpstream:
        return self.add(path, sse_reply(events, **options))

    def answer_all(self, reply: Reply | Handler | None) -> FakeUpstream:
        """Answer every request, whatever its path, with ``reply`` (an error
        a wire fake rendered, say) until called with None or :meth:`reset`."""
        self._answer_all = reply
        return self

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def reset(self) -> FakeUpstream:
        """Forget the routes and the recorded requests, so one fake can serve
        a whole test module (a server costs more to stop than most tests take).
        Tests that watch :attr:`disconnected` or :attr:`streams_finished`
        want a fresh fake: a stream left over from an earlier test may end late."""
        for gate in self._gates:
            gate.open()
        self._gates.clear()
        self._routes.clear()
        self._answer_all = None
        self.requests.clear()
        return self

    # -- serving -----------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        recorded = RecordedRequest(
            method=request.method, path=request.url.path, query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()}, body=await request.body(),
            peer=(request.client.host, request.client.port) if request.client else None,
            raw_path=request.scope.get("raw_path", b"").decode("latin-1"),
        )
        self.requests.append(recorded)
        replies = [self._answer_all] if self._answer_all is not None else self._routes.get(
            (request.method, recorded.path)) or next(
            (replies for (method, path), replies in self._routes.items()
             if method == request.method and path.endswith("*") and recorded.path.startswith(path[:-1])), None)
        if not replies:
            return Response(serialization.dumps({"error": {"message": f"fake upstream: no route {request.method} {recorded.path}", "type": "not_found"}}),
                            status_code=404, media_type="application/json")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(recorded)
        headers = {**reply.headers, "content-encoding": "gzip"} if reply.gzip else reply.headers
        if reply.chunks is None:
            body = zlib.compress(reply.body, wbits=31) if reply.gzip else reply.body
            return Response(body, status_code=reply.status, headers=headers, media_type=reply.content_type)
        return StreamingResponse(self._stream(reply), status_code=reply.status, headers=headers,
                                 media_type=reply.content_type)

    async def _stream(self, reply: Reply) -> Any:
        try:
            encoder = zlib.compressobj(wbits=31) if reply.gzip else None
            for chunk in reply.chunks or []:
                if isinstance(chunk, Gate):
                    self._gates.append(chunk)
                    await chunk._pass()
                    continue
                if encoder is not None:  # each chunk decodable on arrival, as a streaming server sends it
                    chunk = encoder.compress(chunk) + encoder.flush(zlib.Z_SYNC_FLUSH)
                yield chunk
                if reply.delay:
                    await asyncio.sleep(reply.delay)
            if encoder is not None:
                yield encoder.flush()
            self.streams_finished += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.disconnected.set()
            if reply.disconnected is not None:
                reply.disconnected.set()
            raise

    def start(self) -> FakeUpstream:
        self._server.start()
        return self

    def stop(self, wait: bool = True) -> None:
        for gate in self._gates:  # a stream still held open must not hold up the shutdown
            gate.open()
        self._server.stop(wait)

    def join(self) -> None:
        """Wait for a ``stop(wait=False)`` to finish."""
        self._server.join()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["FakeUpstream", "Gate", "RecordedRequest", "Reply", "json_reply", "sse_reply", "ndjson_reply", "sse",
           "split_reads"]


@contextlib.contextmanager
def split_reads(pieces: list[bytes]) -> Iterator[list[bytes | Gate]]:
    """Make an adapter read ``pieces`` one network read at a time, for real:
    write, drain, write.  Yields the chunks for a :class:`Reply` (each piece
    followed by a :class:`Gate`); while the block runs, every upstream
    stream in this process opens the next gate only after it has handed the
    bytes it read to the adapter.  So piece *k+1* leaves the fake only once
    the adapter has consumed piece *k*, and no two pieces share a read::

        with split_reads([b"data: {\\"a", b"\\": 1}\\n\\n"]) as chunks:
            upstream.add(PATH, Reply(chunks=chunks, content_type="text/event-stream"))
            ...  # run the adapter
    """
    from portway.upstream import UpstreamStream

    gates = [Gate() for _ in pieces]
    chunks: list[bytes | Gate] = [item for piece, gate in zip(pieces, gates, strict=True) for item in (piece, gate)]
    original = UpstreamStream._reads
    waiting = iter(gates)

    async def reading(self: UpstreamStream) -> AsyncIterator[bytes]:
        async for chunk in original(self):
            yield chunk  # the adapter has this read now; only then may the next piece be written
            gate = next(waiting, None)
            if gate is not None:
                gate.open()

    UpstreamStream._reads = reading  # type: ignore[method-assign]
    try:
        yield chunks
    finally:
        UpstreamStream._reads = original  # type: ignore[method-assign]
        for gate in gates:
            gate.open()

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
import threading
from collections.abc import Callable, Iterable
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

    def json(self) -> Any:
        return serialization.loads(self.body)


@dataclass
class Reply:
    """One scripted answer.  ``chunks`` makes it a streamed body, sent with
    ``delay`` seconds between chunks."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    delay: float = 0.0
    content_type: str = "application/json"


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=serialization.dumps(data), headers=headers or {})


def sse_reply(
    events: Iterable[Any], *, status: int = 200, delay: float = 0.0, headers: dict[str, str] | None = None,
    done: bool = False, line_end: str = "\n",
) -> Reply:
    """An SSE body.  Each event is a dict (JSON data), a ``(event_name,
    dict)`` pair, raw ``bytes`` (sent as they are), or a ``str`` (sent as a
    ``data:`` line as is).  ``done`` appends OpenAI's ``data: [DONE]``."""
    chunks = []
    for event in events:
        if isinstance(event, bytes):
            chunks.append(event)
            continue
        name, data = event if isinstance(event, tuple) else (None, event)
        payload = data if isinstance(data, str) else serialization.dumps_str(data)
        text = (f"event: {name}{line_end}" if name else "") + f"data: {payload}{line_end}{line_end}"
        chunks.append(text.encode())
    if done:
        chunks.append(f"data: [DONE]{line_end}{line_end}".encode())
    return Reply(status=status, chunks=chunks, delay=delay, headers=headers or {}, content_type="text/event-stream")


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
        self._server = ThreadedServer(Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])]))

    @property
    def url(self) -> str:
        return self._server.url

    # -- scripting ---------------------------------------------------------

    def add(self, path: str, *replies: Reply | Handler, method: str = "POST") -> FakeUpstream:
        """Answer ``method path`` with ``replies`` in turn; the last one repeats."""
        self._routes[(method, path)] = list(replies)
        return self

    def json(self, path: str, data: Any, status: int = 200, headers: dict[str, str] | None = None,
             method: str = "POST") -> FakeUpstream:
        return self.add(path, json_reply(data, status, headers), method=method)

    def sse(self, path: str, events: Iterable[Any], **options: Any) -> FakeUpstream:
        return self.add(path, sse_reply(events, **options))

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    # -- serving -----------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        recorded = RecordedRequest(
            method=request.method, path=request.url.path, query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()}, body=await request.body(),
            peer=(request.client.host, request.client.port) if request.client else None,
        )
        self.requests.append(recorded)
        replies = self._routes.get((request.method, recorded.path))
        if not replies:
            return Response(serialization.dumps({"error": {"message": f"fake upstream: no route {request.method} {recorded.path}", "type": "not_found"}}),
                            status_code=404, media_type="application/json")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(recorded)
        if reply.chunks is None:
            return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.content_type)
        return StreamingResponse(self._stream(reply), status_code=reply.status, headers=reply.headers,
                                 media_type=reply.content_type)

    async def _stream(self, reply: Reply) -> Any:
        try:
            for chunk in reply.chunks or []:
                yield chunk
                if reply.delay:
                    await asyncio.sleep(reply.delay)
            self.streams_finished += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.disconnected.set()
            raise

    def start(self) -> FakeUpstream:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["FakeUpstream", "RecordedRequest", "Reply", "json_reply", "sse_reply", "ndjson_reply", "sse"]

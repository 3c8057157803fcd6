"""Server-sent events: an incremental parser for upstream streams and the
encoder for what the gateway sends.

The parser follows the WHATWG rules that matter for providers: ``event:``
lines, multi-line ``data:`` joined with ``\\n``, ``:`` comment lines
(OpenRouter's keep-alives), and ``\\n``, ``\\r\\n`` or ``\\r`` line ends
(Gemini sends CRLF).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from portway import serialization


@dataclass(slots=True)
class Event:
    data: str
    event: str | None = None
    id: str | None = None

    def json(self) -> Any:
        return serialization.loads(self.data)


class SSEDecoder:
    """Feed bytes in, get complete events out."""

    __slots__ = ("_buffer", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        events: list[Event] = []
        start = 0
        length = len(buffer)
        while start < length:
            # Find the next line end: \n, \r\n or \r.
            nl = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start)
            if nl == -1 and cr == -1:
                break
            if cr != -1 and (nl == -1 or cr < nl):
                if cr + 1 == length:
                    break  # could be the first half of \r\n: wait for more
                end, nxt = cr, cr + (2 if buffer[cr + 1 : cr + 2] == b"\n" else 1)
            else:
                end, nxt = nl, nl + 1
            line = buffer[start:end]
            start = nxt
            event = self._line(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[Event]:
        """End of stream: a last event without its blank line still counts."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: bytes) -> Event | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = Event("\n".join(self._data), self._event, self._id)
            self._data = []
            self._event = None
            return event
        if line[:1] == b":":
            return None
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8"))
        elif name == b"event":
            self._event = value.decode("utf-8")
        elif name == b"id":
            self._id = value.decode("utf-8")
        return None


async def aiter_event_batches(byte_stream: AsyncIterable[bytes]) -> AsyncIterator[list[Event]]:
    """The events that each network read completed, as one list per read:
    what arrived together can be relayed together, in one write."""
    decoder = SSEDecoder()
    async for chunk in byte_stream:
        events = decoder.feed(chunk)
        if events:
            yield events
    tail = decoder.flush()
    if tail:
        yield tail


async def aiter_events(byte_stream: AsyncIterable[bytes]) -> AsyncIterator[Event]:
    decoder = SSEDecoder()
    async for chunk in byte_stream:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


async def aiter_ndjson(byte_stream: AsyncIterable[bytes]) -> AsyncIterator[Any]:
    """Newline-delimited JSON (Ollama, some Bedrock-compatible servers)."""
    buffer = b""
    async for chunk in byte_stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield serialization.loads(line)
    if buffer.strip():
        yield serialization.loads(buffer)


def encode(data: Any, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is JSON-encoded unless it is already bytes."""
    payload = data if isinstance(data, bytes) else serialization.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


DONE = b"data: [DONE]\n\n"

"""Server-sent events: an incremental parser for upstream streams and the
encoder for what the gateway sends.

The parser follows the WHATWG rules that matter for providers: ``event:``
lines, multi-line ``data:`` joined with ``\\n``, ``:`` comment lines
(OpenRouter's keep-alives), and ``\\n``, ``\\r\\n`` or ``\\r`` line ends
(Gemini sends CRLF).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from portway import serialization


class Event:
    """One SSE event.  ``raw`` is the data as received; ``data`` decodes it."""

    __slots__ = ("raw", "event", "id")

    def __init__(self, raw: bytes, event: str | None = None, id: str | None = None) -> None:
        self.raw = raw
        self.event = event
        self.id = id

    @property
    def data(self) -> str:
        return self.raw.decode("utf-8")

    def json(self) -> Any:
        return serialization.loads(self.raw)

    def __repr__(self) -> str:
        return f"Event(raw={self.raw!r}, event={self.event!r}, id={self.id!r})"


class SSEDecoder:
    """Feed bytes in, get complete events out.

    Works on whole event blocks (split at the blank line) with
    ``bytes.split``, rather than line by line in Python: a provider stream
    is dozens of events per response, and this is the per-event cost."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # Normalise CRLF and CR line ends; a trailing \r may be the first
            # half of a \r\n split across reads, so it waits for the next one.
            held = buffer.endswith(b"\r")
            if held:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *blocks, rest = buffer.split(b"\n\n")
            self._buffer = rest + b"\r" if held else rest
        else:
            *blocks, self._buffer = buffer.split(b"\n\n")
        events = []
        for block in blocks:
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[Event]:
        """End of stream: a last event without its blank line still counts."""
        rest, self._buffer = self._buffer, b""
        rest = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").strip(b"\n")
        events = [_parse_block(block) for block in rest.split(b"\n\n")] if rest else []
        return [event for event in events if event is not None]


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:  # the common case: one data line
        return Event(block[6:])
    data: list[bytes] = []
    name: str | None = None
    event_id: str | None = None
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8")
        elif field == b"id":
            event_id = value.decode("utf-8")
    if not data and name is None:
        return None
    return Event(b"\n".join(data), name, event_id)


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
    """One event at a time, for adapters that do not relay in batches."""
    async for events in aiter_event_batches(byte_stream):
        for event in events:
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

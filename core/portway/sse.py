"""Server-sent events: an incremental parser for upstream streams and the
encoder for what the gateway sends.

The parser follows the WHATWG rules that matter for providers: ``event:``
lines, multi-line ``data:`` joined with ``\\n``, ``:`` comment lines
(OpenRouter's keep-alives), ``\\n``, ``\\r\\n`` or ``\\r`` line ends
(Gemini sends CRLF), and one UTF-8 byte order mark at the start of the
stream, which is dropped.  An upstream is untrusted: ``event:`` and ``id:``
values that are not UTF-8 are decoded with replacement characters, and a decoder
given a limit refuses an event that grows past it (a stream that never sends
a blank line must not grow memory without end).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractContextManager, aclosing, nullcontext
from typing import Any

from portway import serialization

BOM = b"\xef\xbb\xbf"


class EventTooLarge(ValueError):
    """An SSE event or NDJSON line grew past the decoder's limit.
    ``events`` are the complete events of the same read, still valid."""

    def __init__(self, limit: int, events: list[Event] | None = None) -> None:
        super().__init__(f"an event is larger than {limit} bytes")
        self.limit = limit
        self.events = events or []


def _without_bom(buffer: bytes) -> bytes | None:
    """The stream's first bytes without a BOM; None while they may still be
    the start of one (a BOM split across reads)."""
    if len(buffer) < len(BOM) and BOM.startswith(buffer):
        return None
    return buffer[len(BOM):] if buffer.startswith(BOM) else buffer


class Event:
    """One SSE event.  ``raw`` is the data as received; ``data`` decodes it."""

    __slots__ = ("raw", "event", "id")

    def __init__(self, raw: bytes, event: str | None = None, id: str | None = None) -> None:
        self.raw = raw
        self.event = event
        self.id = id

    @property
    def data(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def json(self) -> Any:
        return serialization.loads(self.raw)

    def __repr__(self) -> str:
        return f"Event(raw={self.raw!r}, event={self.event!r}, id={self.id!r})"


class SSEDecoder:
    """Feed bytes in, get complete events out.

    Works on whole event blocks (split at the blank line) with
    ``bytes.split``, rather than line by line in Python: a provider stream
    is dozens of events per response, and this is the per-event cost.

    ``max_event_bytes`` bounds the unfinished event it holds between reads:
    past it, :meth:`feed` raises :class:`EventTooLarge` (which carries the
    read's complete events)."""

    __slots__ = ("_buffer", "_max", "_started")

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._buffer = b""
        self._max = max_event_bytes
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            stripped = _without_bom(buffer)
            if stripped is None:
                self._buffer = buffer
                return []
            buffer, self._started = stripped, True
        # (find, not `in`: `b"..." in bytes` first tries its operand as an
        # integer, and the TypeError it raises and drops costs twice the search.)
        if buffer.find(b"\r") >= 0:
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
            if block.startswith(b"data: ") and block.find(b"\n") < 0:  # the common case: one data line
                events.append(Event(block[6:]))
                continue
            event = _parse_block(block)
            if event is not None:
                events.append(event)
        if self._max is not None and len(self._buffer) > self._max:
            raise EventTooLarge(self._max, events)
        return events

    def flush(self) -> list[Event]:
        """End of stream: a last event without its blank line still counts."""
        rest, self._buffer = self._buffer, b""
        if not self._started:
            rest = _without_bom(rest) or b""
        rest = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").strip(b"\n")
        events = [_parse_block(block) for block in rest.split(b"\n\n")] if rest else []
        return [event for event in events if event is not None]


def _parse_block(block: bytes) -> Event | None:
    """One event block (:meth:`SSEDecoder.feed` takes the common one-data-line case itself)."""
    if block.startswith(b"event: "):  # Anthropic's and the Responses API's: one event line, one data line
        head, _, tail = block.partition(b"\n")
        if tail.startswith(b"data: ") and tail.find(b"\n") < 0:
            return Event(tail[6:], head[7:].decode("utf-8", "replace"))
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
            name = value.decode("utf-8", "replace")
        elif field == b"id":
            event_id = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return Event(b"\n".join(data), name, event_id)


async def aclose_reads(reads: AsyncIterator[Any]) -> None:
    """Close an iterator of network reads a reader stops early, when it is
    a generator: left to the garbage collector, an unfinished async
    generator is closed by a task the event loop schedules through its
    thread-safe wake-up (a self-pipe write and read), per stream."""
    close = getattr(reads, "aclose", None)
    if close is not None:
        await close()


async def aiter_event_batches(
    byte_stream: AsyncIterable[bytes],
    max_event_bytes: int | None = None,
    *,
    reading: Callable[[], AbstractContextManager[Any]] = nullcontext,
    too_large: Callable[[EventTooLarge], Exception] | None = None,
) -> AsyncIterator[list[Event]]:
    """The events that each network read completed, as one list per read:
    what arrived together can be relayed together, in one write.  (Provider
    adapters use :meth:`portway.upstream.UpstreamStream.aiter_event_batches`,
    which applies the provider's ``max_event_bytes``.)

    ``reading``: a context around reading ``byte_stream`` (the upstream's
    classification of transport failures); ``too_large``: the exception to
    raise for an event past ``max_event_bytes`` (else :class:`EventTooLarge`
    itself), after the read's complete events."""
    decoder = SSEDecoder(max_event_bytes)
    reads = aiter(byte_stream)
    try:
        with reading():
            async for chunk in reads:
                try:
                    events = decoder.feed(chunk)
                except EventTooLarge as exc:
                    if exc.events:
                        yield exc.events
                    if too_large is None:
                        raise
                    raise too_large(exc) from None
                if events:
                    yield events
    finally:
        await aclose_reads(reads)
    tail = decoder.flush()
    if tail:
        yield tail


async def aiter_events(byte_stream: AsyncIterable[bytes], max_event_bytes: int | None = None) -> AsyncIterator[Event]:
    """One event at a time, for adapters that do not relay in batches."""
    async with aclosing(aiter_event_batches(byte_stream, max_event_bytes)) as batches:
        async for events in batches:
            for event in events:
                yield event


async def aiter_ndjson(byte_stream: AsyncIterable[bytes], max_line_bytes: int | None = None) -> AsyncIterator[Any]:
    """Newline-delimited JSON (Ollama, some Bedrock-compatible servers); a
    line longer than ``max_line_bytes`` raises :class:`EventTooLarge`."""
    buffer = b""
    started = False
    reads = aiter(byte_stream)
    try:
        async for chunk in reads:
            buffer += chunk
            if not started:
                stripped = _without_bom(buffer)
                if stripped is None:
                    continue
                buffer, started = stripped, True
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield serialization.loads(line)
            if max_line_bytes is not None and len(buffer) > max_line_bytes:
                raise EventTooLarge(max_line_bytes)
    finally:
        await aclose_reads(reads)
    if not started:
        buffer = _without_bom(buffer) or b""
    if buffer.strip():
        yield serialization.loads(buffer)


def encode(data: Any, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is JSON-encoded unless it is already bytes."""
    payload = data if isinstance(data, bytes) else serialization.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


class Relayed(list):  # type: ignore[type-arg]
    """A batch of stream items that are, unchanged, the JSON the upstream
    sent: ``raw`` holds each item's ``data`` as it came (one line each), in
    order.  :func:`encode_all` sends those bytes instead of encoding the
    items again.  Whatever changes a batch makes a new list (a plain one),
    so a ``Relayed`` that reaches the encoder is still what was sent."""

    __slots__ = ("raw",)

    def __init__(self, items: list[Any], raw: list[bytes]) -> None:
        super().__init__(items)
        self.raw = raw

    @staticmethod
    def joined(batches: list[list[Any]]) -> list[Any]:
        """Several batches as one: a ``Relayed`` when each of them is one."""
        if len(batches) == 1:
            return batches[0]
        items = [item for batch in batches for item in batch]
        if all(type(batch) is Relayed for batch in batches):
            return Relayed(items, [data for batch in batches for data in batch.raw])  # type: ignore[attr-defined]
        return items


def encode_all(items: list[Any]) -> bytes:
    """``data:`` events of the JSON values ``items``, in one piece: the
    join runs in C, with no Python call per event.  A :class:`Relayed`
    batch is framed from the upstream's own bytes."""
    if not items:
        return b""
    if type(items) is Relayed:
        return b"data: " + b"\n\ndata: ".join(items.raw) + b"\n\n"
    return b"data: " + b"\n\ndata: ".join(map(serialization.dumps, items)) + b"\n\n"


DONE = b"data: [DONE]\n\n"

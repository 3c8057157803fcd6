"""The ``application/vnd.amazon.eventstream`` framing of Bedrock's streams,
decoded incrementally (botocore's ``eventstream.py`` is the reference).

A message, all integers big-endian::

    total length (4) | headers length (4) | CRC32 of the 8 bytes before (4)
    headers | payload | CRC32 of every byte before (4)

Each header is a 1-byte name length, the name, a 1-byte value type and the
value (types 0-9: booleans, integers, bytes and strings with a 2-byte
length, a timestamp, a UUID).  Bytes arrive in network reads that need not
match messages: a read may end inside a message or hold several.  Both CRCs
are checked, the prelude's before its lengths are trusted, so a corrupt
length is an error rather than a wait for bytes that never come.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from portway.formats import MalformedAnswer

PRELUDE = 12
#: Bytes of a message beyond its headers and payload: prelude and message CRC.
OVERHEAD = PRELUDE + 4

# Value type -> size of a fixed-size value (0 and 1 are the booleans, with no bytes).
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_INTEGERS = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


class BadFrame(MalformedAnswer):
    """Bytes that are not an event-stream message (a CRC mismatch, an
    impossible length, a header of an unknown type)."""


class FrameTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"an event-stream message of {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, Any]
    payload: bytes

    @property
    def message_type(self) -> Any:
        return self.headers.get(":message-type")

    @property
    def event_type(self) -> Any:
        return self.headers.get(":event-type")


def parse_headers(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    i, end = 0, len(data)
    try:
        while i < end:
            size = data[i]
            name = data[i + 1:i + 1 + size].decode()
            i += 1 + size
            kind = data[i]
            i += 1
            if kind in _FIXED:
                raw = data[i:i + _FIXED[kind]]
                if len(raw) != _FIXED[kind]:
                    raise BadFrame("an event-stream header value is cut short")
                i += _FIXED[kind]
                value: Any = kind == 0 if kind in (0, 1) else raw.hex() if kind == 9 else \
                    struct.unpack(_INTEGERS[kind], raw)[0]
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, i)
                raw = data[i + 2:i + 2 + length]
                if len(raw) != length:
                    raise BadFrame("an event-stream header value is cut short")
                i += 2 + length
                value = raw.decode() if kind == 7 else raw
            else:
                raise BadFrame(f"an event-stream header has the unknown value type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise BadFrame("an event-stream message has malformed headers") from None
    return headers


class Decoder:
    """Feed it reads; it returns the messages they complete.  A message that
    fails a check (:class:`BadFrame`) or is larger than ``max_bytes``
    (:class:`FrameTooLarge`) stops the decoding: the messages before it are
    returned, and the failure is kept in :attr:`error`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.error: BadFrame | FrameTooLarge | None = None
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a message not complete yet (a stream that ends with some was cut)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        if self.error is not None:
            return []
        messages: list[Message] = []
        try:
            self._decode(data, messages)
        except (BadFrame, FrameTooLarge) as exc:
            self.error = exc
        return messages

    def _decode(self, data: bytes, messages: list[Message]) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= PRELUDE:
            total, header_bytes, prelude_crc = struct.unpack_from(">III", buffer, start)
            if zlib.crc32(buffer[start:start + 8]) != prelude_crc:
                raise BadFrame("an event-stream message's prelude fails its CRC")
            if total < OVERHEAD or header_bytes > total - OVERHEAD:
                raise BadFrame("an event-stream message has impossible lengths")
            if total > self.max_bytes:
                raise FrameTooLarge(total)
            if len(buffer) - start < total:
                break
            frame = memoryview(buffer)[start:start + total]
            try:
                (message_crc,) = struct.unpack_from(">I", frame, total - 4)
                if zlib.crc32(frame[:total - 4]) != message_crc:
                    raise BadFrame("an event-stream message fails its CRC")
                headers = parse_headers(bytes(frame[PRELUDE:PRELUDE + header_bytes]))
                messages.append(Message(headers, bytes(frame[PRELUDE + header_bytes:total - 4])))
            finally:
                frame.release()
            start += total
        del buffer[:start]


class EventStreamReader:
    """An upstream stream read as event-stream messages, one list per
    network read: the shape :meth:`portway.providers.Provider.stream_items`
    consumes (it calls :meth:`aiter_event_batches`), so the one stream loop
    of every adapter serves this framing too.  ``fail`` turns a reason into
    the provider's classified error."""

    def __init__(self, response: Any, max_bytes: int, fail: Callable[[str], Exception],
                 too_large: Callable[[int], Exception]) -> None:
        self._response = response
        self.headers = response.headers
        self._decoder = Decoder(max_bytes)
        self._fail = fail
        self._too_large = too_large
        self.ended_inside_message = False

    async def aiter_event_batches(self) -> AsyncIterator[list[Message]]:
        decoder = self._decoder
        async for data in self._response.aiter_bytes():
            messages = decoder.feed(data)
            if messages:
                yield messages
            if isinstance(decoder.error, FrameTooLarge):
                raise self._too_large(decoder.error.size)
            if decoder.error is not None:
                raise self._fail(str(decoder.error))
        self.ended_inside_message = decoder.pending > 0

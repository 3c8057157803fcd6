"""The event-stream decoder against the wire reference's verified frame and
botocore's own parser."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from portway_bedrock.eventstream import Decoder, FrameTooLarge, Message
from portway_bedrock.testing import chunk, event, exception, frame

# provider-wire-facts.md §5, "Verified test frame" (148 bytes).
VECTOR = bytes.fromhex(
    "0000009400000057b4ab9aee0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d"
    "747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74"
    "426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a224869227d7d1f944657")
VECTOR_HEADERS = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}
VECTOR_PAYLOAD = b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'


def test_decodes_the_vector() -> None:
    assert Decoder(1 << 20).feed(VECTOR) == [Message(VECTOR_HEADERS, VECTOR_PAYLOAD)]


def test_the_fake_frames_the_vector_byte_for_byte() -> None:
    assert frame(VECTOR_HEADERS, VECTOR_PAYLOAD) == VECTOR
    assert event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}) == VECTOR


@pytest.mark.parametrize("message", [
    event("messageStop", {"stopReason": "end_turn"}),
    exception("throttlingException", "Too many tokens, please wait before trying again."),
    chunk({"type": "message_stop"}),
])
def test_botocore_reads_the_fakes_frames(message: bytes) -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(message)
    parsed = list(buffer)
    assert len(parsed) == 1
    ours = Decoder(1 << 20).feed(message)
    assert ours == [Message(parsed[0].headers, parsed[0].payload)]


def test_reads_split_anywhere_and_several_per_read() -> None:
    stream = VECTOR + exception("throttlingException", "slow down") + VECTOR
    whole = Decoder(1 << 20).feed(stream)
    assert [m.message_type for m in whole] == ["event", "exception", "event"]
    decoder = Decoder(1 << 20)
    one_by_one = [m for i in range(len(stream)) for m in decoder.feed(stream[i:i + 1])]
    assert one_by_one == whole and decoder.pending == 0
    decoder = Decoder(1 << 20)
    assert decoder.feed(stream[:200]) == whole[:1] and decoder.pending == 200 - len(VECTOR)


def test_every_header_type() -> None:
    headers = (b"\x01a\x00" + b"\x01b\x01" + b"\x01c\x02\xff" + b"\x01d\x03\x01\x00" + b"\x01e\x04\x00\x00\x01\x00"
               + b"\x01f\x05" + struct.pack(">q", -2) + b"\x01g\x06\x00\x02\x00\x01" + b"\x01h\x07\x00\x02hi"
               + b"\x01i\x08" + struct.pack(">q", 1735689600000) + b"\x01j\x09" + bytes(range(16)))
    prelude = struct.pack(">II", 16 + len(headers) + 2, len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + b"{}"
    message = body + struct.pack(">I", zlib.crc32(body))
    [decoded] = Decoder(1 << 20).feed(message)
    assert decoded.headers == {"a": True, "b": False, "c": -1, "d": 256, "e": 256, "f": -2, "g": b"\x00\x01",
                               "h": "hi", "i": 1735689600000, "j": bytes(range(16)).hex()}
    botocore = EventStreamBuffer()
    botocore.add_data(message)
    assert next(iter(botocore)).payload == decoded.payload == b"{}"


@pytest.mark.parametrize(("where", "reason"), [(5, "prelude fails its CRC"), (-1, "fails its CRC")])
def test_a_bad_crc_stops_after_the_good_messages(where: int, reason: str) -> None:
    bad = bytearray(VECTOR)
    bad[where] ^= 0x01
    decoder = Decoder(1 << 20)
    assert decoder.feed(VECTOR + bytes(bad) + VECTOR) == [Message(VECTOR_HEADERS, VECTOR_PAYLOAD)]
    assert decoder.error is not None and reason in str(decoder.error)
    assert decoder.feed(VECTOR) == []  # nothing after a corrupt message can be trusted


def test_impossible_lengths_and_size_cap() -> None:
    prelude = struct.pack(">II", 10, 0)
    decoder = Decoder(1 << 20)
    decoder.feed(prelude + struct.pack(">I", zlib.crc32(prelude)))
    assert decoder.error is not None and "impossible lengths" in str(decoder.error)
    decoder = Decoder(100)
    decoder.feed(VECTOR[:12])  # the prelude alone says it is too large: no waiting for the rest
    assert isinstance(decoder.error, FrameTooLarge) and decoder.error.size == len(VECTOR)

"""The SSE decoder against the framings providers really send."""

from __future__ import annotations

import asyncio

from portway import sse


def decode_all(*chunks: bytes) -> list[sse.Event]:
    decoder = sse.SSEDecoder()
    events: list[sse.Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.flush()


def test_openai_framing_and_done() -> None:
    events = decode_all(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert [e.data for e in events] == ['{"a":1}', "[DONE]"]
    assert events[0].json() == {"a": 1}


def test_named_events_split_across_reads() -> None:
    raw = b'event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {"type": "ping"}\n\n'
    # Feed one byte at a time: boundaries can fall anywhere, even inside \r\n.
    events = decode_all(*[raw[i : i + 1] for i in range(len(raw))])
    assert [(e.event, e.json()["type"]) for e in events] == [("message_start", "message_start"), ("ping", "ping")]


def test_crlf_separators_as_gemini_sends_them() -> None:
    raw = b'data: {"x":1}\r\n\r\ndata: {"x":2}\r\n\r\n'
    for split in range(len(raw)):
        events = decode_all(raw[:split], raw[split:])
        assert [e.json()["x"] for e in events] == [1, 2], split


def test_comments_multiline_data_and_missing_final_blank_line() -> None:
    events = decode_all(b": OPENROUTER PROCESSING\n\ndata: line1\ndata: line2\n\ndata:last")
    assert [e.data for e in events] == ["line1\nline2", "last"]


def test_utf8_split_inside_a_character() -> None:
    raw = 'data: {"t":"héllo 👋"}\n\n'.encode()
    cut = raw.index("👋".encode()) + 2
    assert decode_all(raw[:cut], raw[cut:])[0].json() == {"t": "héllo 👋"}


def test_ndjson() -> None:
    async def run() -> list[object]:
        async def source():  # type: ignore[no-untyped-def]
            yield b'{"a":1}\n{"a"'
            yield b':2}\n\n{"a":3}'

        return [item async for item in sse.aiter_ndjson(source())]

    assert asyncio.run(run()) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_encode() -> None:
    assert sse.encode({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse.encode({"type": "ping"}, event="ping") == b'event: ping\ndata: {"type":"ping"}\n\n'


def test_event_batches_follow_the_reads_and_events_flatten_them() -> None:
    reads = [b'data: {"n":1}\n\ndata: {"n":2}\n\nda', b'ta: {"n":3}\n\n', b"data: tail"]

    async def source():  # type: ignore[no-untyped-def]
        for read in reads:
            yield read

    async def run() -> tuple[list[list[int]], list[int]]:
        batches = [[e.json()["n"] for e in batch] async for batch in sse.aiter_event_batches(source())
                   if batch[0].data != "tail"]
        flat = [e.data async for e in sse.aiter_events(source())]
        return batches, flat

    batches, flat = asyncio.run(run())
    assert batches == [[1, 2], [3]]
    assert flat == ['{"n":1}', '{"n":2}', '{"n":3}', "tail"]

"""The SSE decoder against the framings providers really send."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("reader", ["batches", "events", "ndjson"])
def test_a_reader_closed_early_closes_the_reads_it_was_given(reader: str) -> None:
    """Stopping early (at ``[DONE]``, say) and closing the reader closes the
    generator of network reads too, at once: none is left to the loop's
    async-generator finalizer (a task and a self-pipe wake-up, per stream)."""
    closed: list[bool] = []

    async def source():  # type: ignore[no-untyped-def]
        try:
            for read in (b'data: {"n":1}\n\n' if reader != "ndjson" else b'{"n":1}\n', b"never read"):
                yield read
        finally:
            closed.append(True)

    async def run() -> None:
        made = {"batches": sse.aiter_event_batches, "events": sse.aiter_events, "ndjson": sse.aiter_ndjson}[reader]
        outer = made(source())
        await anext(outer)
        assert closed == []
        await outer.aclose()
        assert closed == [True]

    asyncio.run(run())


def test_a_cr_at_the_end_of_a_read_waits_for_the_next_one() -> None:
    # "event: ping\r" + "\ndata: {}\r\n\r\n" is one event: the \r and the \n
    # that follows it in the next read are one line end, not two.
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"event: ping\r") == []
    events = decoder.feed(b"\ndata: {}\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [("ping", "{}")]
    assert decoder.flush() == []


def test_a_leading_byte_order_mark_is_dropped_wherever_the_reads_split_it() -> None:
    raw = b'\xef\xbb\xbfdata: {"n":1}\n\ndata: {"n":2}\n\n'
    for split in range(len(raw)):
        assert [e.json()["n"] for e in decode_all(raw[:split], raw[split:])] == [1, 2], split
    assert [e.data for e in decode_all(b"\xef\xbb", b"\xbfdata: x")] == ["x"]  # the tail, on flush


def test_only_the_first_byte_order_mark_is_dropped() -> None:
    events = decode_all(b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n")
    assert [e.data for e in events] == ["a"]  # "\ufeffdata" is an unknown field name: WHATWG ignores the line


def test_event_and_id_lines_that_are_not_utf8_are_decoded_with_replacement() -> None:
    events = decode_all(b"event: ping\xff\nid: \xfe1\ndata: \xff\n\n")
    assert [(e.event, e.id, e.data) for e in events] == [("ping\ufffd", "\ufffd1", "\ufffd")]


def test_an_event_that_never_ends_is_refused_at_the_limit() -> None:
    decoder = sse.SSEDecoder(max_event_bytes=100)
    assert [e.data for e in decoder.feed(b"data: " + b"x" * 90 + b"\n\n")] == ["x" * 90]  # under the limit
    decoder.feed(b"data: " + b"y" * 60)
    with pytest.raises(sse.EventTooLarge) as info:
        decoder.feed(b"y" * 30 + b"\n\ndata: done\n\ndata: " + b"z" * 101)  # this unfinished event is 107 bytes
    assert info.value.limit == 100
    assert [e.data for e in info.value.events] == ["y" * 90, "done"]  # the read's complete events are still good


def test_event_batches_apply_the_limit() -> None:
    async def source():  # type: ignore[no-untyped-def]
        yield b"data: start\n\n"
        yield b"data: also\n\ndata: " + b"z" * 1000
        while True:  # an upstream that never sends the blank line
            yield b"z" * 1000

    async def run() -> list[list[str]]:
        seen = []
        with pytest.raises(sse.EventTooLarge):
            async for batch in sse.aiter_event_batches(source(), max_event_bytes=10_000):
                seen.append([e.data for e in batch])
        return seen

    assert asyncio.run(run()) == [["start"], ["also"]]


def ndjson(*reads: bytes, max_line_bytes: int | None = None) -> list[object]:
    async def source():  # type: ignore[no-untyped-def]
        for read in reads:
            yield read

    async def run() -> list[object]:
        return [item async for item in sse.aiter_ndjson(source(), max_line_bytes)]

    return asyncio.run(run())


def test_ndjson_drops_a_leading_byte_order_mark() -> None:
    raw = b'\xef\xbb\xbf{"a":1}\n{"a":2}\n'
    for split in range(len(raw)):
        assert ndjson(raw[:split], raw[split:]) == [{"a": 1}, {"a": 2}], split


def test_ndjson_refuses_a_line_past_the_limit() -> None:
    assert ndjson(b'{"a":"' + b"x" * 50 + b'"}\n', max_line_bytes=64) == [{"a": "x" * 50}]
    with pytest.raises(sse.EventTooLarge):
        ndjson(b'{"a":"' + b"x" * 50, b"x" * 50, max_line_bytes=64)


def _whatwg_block(block: bytes) -> tuple[bytes, str | None, str | None] | None:
    """The WHATWG field rules, line by line, with no shortcut: what the
    decoder's fast paths for the common framings must agree with."""
    data, name, event_id = [], None, None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"id":
            event_id = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return b"\n".join(data), name, event_id


_LINES = [b"event: message_start", b"event:ping", b"event: a: b", b"event: ", b"data: {}", b"data:x", b"data: ",
          b"data: a: b", b"id: 7", b": comment", b"retry: 10", b"data", b"event", b"eventx: y", b"datax: y", b""]


@given(st.lists(st.sampled_from(_LINES), min_size=1, max_size=4))
@settings(derandomize=True, max_examples=400)
def test_every_block_reads_as_the_whatwg_rules_say(lines: list[bytes]) -> None:
    block = b"\n".join(lines)
    if b"\n\n" in block or block.endswith(b"\n") or not block.strip(b"\n"):
        return  # not one block
    event = sse._parse_block(block)
    expected = _whatwg_block(block)
    assert (None if event is None else (event.raw, event.event, event.id)) == expected, block


def test_the_named_event_framing_keeps_colons_in_names_and_data() -> None:
    events = decode_all(b"event: a:b\ndata: c: d\n\nevent: x\ndata: 1\nid: 9\n\nevent: y\ndata: 1\ndata: 2\n\n")
    assert [(e.event, e.raw, e.id) for e in events] == [("a:b", b"c: d", None), ("x", b"1", "9"), ("y", b"1\n2", None)]


def test_a_stream_response_that_cannot_start_still_closes_and_says_so() -> None:
    """The client left before the response's first byte: the body never ran
    (so its own end-of-stream code never will), and ``on_close`` is how the
    request still finishes, exactly once."""
    import asyncio

    from portway.streaming import EventStreamResponse

    async def scenario() -> list[str]:
        happened: list[str] = []

        async def body():  # type: ignore[no-untyped-def]
            happened.append("body started")
            yield b"data: x\n\n"

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            raise OSError("connection reset")

        async def receive() -> dict:  # type: ignore[type-arg]
            await asyncio.sleep(3600)
            return {}

        response = EventStreamResponse(body(), on_close=lambda ran: happened.append(f"closed, body read: {ran}"))
        await response({"type": "http"}, receive, send)
        return happened

    assert asyncio.run(scenario()) == ["closed, body read: False"]

"""The upstream HTTP seam, on both transports, against a real socket.

Orders of events are proven, not hoped for: a :class:`~portway.testing.Gate`
in a scripted stream holds the fake upstream until the test opens it, so a
"split read" really is split, and a body "still open" really is.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import portway
from portway import upstream as upstream_module
from portway.errors import ProviderError
from portway.testing import FakeUpstream, Gate, Reply, free_port, json_reply, sse_reply
from portway.upstream import Upstream

TRANSPORTS = ["httptools", "aiohttp", "httpx"]

#: Bounds a test that would hang if the behaviour it checks were broken.
HANG = 10.0


def run(transport: str, base_url: str, work: Callable[[Upstream], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        upstream = Upstream(base_url, name="up", headers={"authorization": "Bearer k"}, transport=transport, **options)
        await upstream.start()
        try:
            return await work(upstream)
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def failure(transport: str, base_url: str, work: Callable[[Upstream], Awaitable[Any]], **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        run(transport, base_url, work, **options)
    return info.value


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def fake(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


@pytest.fixture
def fresh() -> Iterator[FakeUpstream]:
    """For tests that watch how a stream ended."""
    with FakeUpstream() as up:
        yield up


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_request_sends_json_and_headers(fake: FakeUpstream, transport: str) -> None:
    fake.add("/v1/x", json_reply({"ok": True}, 201, {"x-ratelimit-remaining-requests": "9"}))

    async def work(up: Upstream) -> Any:
        return await up.request("POST", "/x", json={"a": 1}, headers={"x-extra": "1"})

    response = run(transport, fake.url + "/v1", work)
    assert response.status == 201 and response.json() == {"ok": True}
    assert response.headers["X-RateLimit-Remaining-Requests"] == "9"  # case-insensitive
    sent = fake.last
    assert sent.json() == {"a": 1}
    assert sent.headers["authorization"] == "Bearer k" and sent.headers["x-extra"] == "1"
    assert sent.headers["content-type"] == "application/json"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stream_delivers_bytes_as_they_come(fake: FakeUpstream, transport: str) -> None:
    gate = Gate()
    fake.add("/s", sse_reply([{"n": 1}, gate, {"n": 2}]))

    async def work(up: Upstream) -> tuple[bytes, bytes]:
        before = received = b""
        async with up.stream("POST", "/s", json={}) as response:
            assert response.status == 200
            async for chunk in response.aiter_bytes():
                received += chunk
                if not before and received.endswith(b"\n\n"):
                    before = received
                    gate.open()  # the second event is sent only after the first was received
        return before, received

    before, received = run(transport, fake.url, work)
    assert before == b'data: {"n":1}\n\n'
    assert received == before + b'data: {"n":2}\n\n'


#: The transports that keep a finished stream's connection (httpx drops it).
POOLING = ["httptools", "aiohttp"]


@pytest.mark.parametrize("transport", POOLING)
def test_a_finished_stream_leaves_its_connection_for_the_next_request(fake: FakeUpstream, transport: str) -> None:
    fake.add("/s", sse_reply([{"n": 1}], done=True))

    async def work(up: Upstream) -> None:
        for _ in range(3):
            async with up.stream("POST", "/s", json={}) as response:
                async for chunk in response.aiter_bytes():
                    if b"[DONE]" in chunk:
                        break  # the provider stops reading at its end marker
            await up.drained()

    run(transport, fake.url, work)
    assert len({request.peer for request in fake.requests}) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_a_classified_error_naming_the_provider(transport: str) -> None:
    async def work(up: Upstream) -> Any:
        return await up.request("POST", "/x", json={})

    error = failure(transport, f"http://127.0.0.1:{free_port()}", work)
    assert error.kind == "connection" and error.provider == "up"
    assert "provider 'up'" in error.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_upstream_times_out(fake: FakeUpstream, transport: str) -> None:
    fake.add("/slow", Reply(chunks=[b"data: {}\n\n", Gate(), b"data: {}\n\n"], content_type="text/event-stream"))

    async def work(up: Upstream) -> None:
        async with up.stream("POST", "/slow", json={}) as response:
            async for _ in response.aiter_bytes():
                pass

    error = failure(transport, fake.url, work, timeout=0.3)
    assert error.kind == "timeout" and error.message == "provider 'up': upstream stream timed out"

    async def events(up: Upstream) -> None:  # the SSE reader, which does not go through aiter_bytes
        async with up.stream("POST", "/slow", json={}) as response:
            async for _ in response.aiter_event_batches():
                pass

    error = failure(transport, fake.url, events, timeout=0.3)
    assert error.kind == "timeout" and error.message == "provider 'up': upstream stream timed out"


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        Upstream("http://x", transport="curl")


# -- connecting -------------------------------------------------------------------------------------------


@pytest.fixture
def unanswered_address() -> Iterator[str]:
    """An address where connecting hangs, offline: a listening socket whose
    accept queue is full (Linux drops further SYNs rather than refuse them)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # room for one connection that nobody accepts
    filler = socket.create_connection(listener.getsockname())
    try:
        yield "http://127.0.0.1:%d" % listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connect_timeout_bounds_connecting(unanswered_address: str, transport: str) -> None:
    async def work(up: Upstream) -> Any:
        async with asyncio.timeout(HANG):  # a connect timeout ignored would hang here
            return await up.request("POST", "/x", json={})

    error = failure(transport, unanswered_address, work, connect_timeout=0.2)
    assert error.kind == "timeout" and error.status == 504
    assert error.message == "provider 'up': could not connect to upstream within connect_timeout (0.2 s)"


# -- bodies ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gzip_encoded_stream_is_decoded_as_it_arrives(fake: FakeUpstream, transport: str) -> None:
    gate = Gate()
    fake.add("/s", sse_reply([{"n": 1}, gate, {"n": 2}, {"n": 3}], done=True, gzip=True))

    async def work(up: Upstream) -> list[list[Any]]:
        batches = []
        async with up.stream("POST", "/s", json={}) as response:
            assert response.headers["content-encoding"] == "gzip"
            async for events in response.aiter_event_batches():
                batches.append([event.data for event in events])
                gate.open()  # the rest is compressed and sent only after the first event was decoded
        return batches

    batches = run(transport, fake.url, work)
    assert batches[0] == ['{"n":1}']
    assert [data for batch in batches[1:] for data in batch] == ['{"n":2}', '{"n":3}', "[DONE]"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_gzip_encoded_answer_is_decoded(fake: FakeUpstream, transport: str) -> None:
    fake.add("/x", Reply(body=b'{"ok": true}', gzip=True))

    async def work(up: Upstream) -> Any:
        return (await up.request("POST", "/x", json={})).json()

    assert run(transport, fake.url, work) == {"ok": True}


# -- the connection pool -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_full_pool_is_its_own_error_and_the_upstream_never_sees_the_request(fake: FakeUpstream,
                                                                              transport: str) -> None:
    gates = [Gate(), Gate()]
    fake.add("/s", *[sse_reply([{"n": 1}, gate], done=True) for gate in gates])
    fake.json("/x", {"ok": True})

    async def hold(up: Upstream, opened: asyncio.Event) -> None:
        async with up.stream("POST", "/s", json={}) as response:
            async for chunk in response.aiter_bytes():
                if b'"n":1' in chunk:
                    opened.set()
                if b"[DONE]" in chunk:
                    break

    async def work(up: Upstream) -> tuple[ProviderError, Any]:
        opened = [asyncio.Event(), asyncio.Event()]
        holders = [asyncio.create_task(hold(up, event)) for event in opened]
        for event in opened:
            await event.wait()  # both pooled connections are in use
        with pytest.raises(ProviderError) as info:
            await up.request("POST", "/x", json={})
        for gate in gates:
            gate.open()
        await asyncio.gather(*holders)
        await up.drained()
        return info.value, (await up.request("POST", "/x", json={})).json()  # the pool has room again

    error, later = run(transport, fake.url, work, max_connections=2, pool_timeout=0.2, connect_timeout=0.05)
    assert (error.kind, error.status, error.provider) == ("pool_exhausted", 503, "up")
    assert error.message == ("the gateway's own connection pool for provider 'up' is full "
                             "(max_connections=2; none came free within pool_timeout=0.2 s)")
    assert error.retryable
    assert [r.path for r in fake.requests] == ["/s", "/s", "/x"]  # the refused request never reached it
    assert later == {"ok": True}


# -- the end of a stream ----------------------------------------------------------------------------------------


async def read_to_done(up: Upstream) -> None:
    async with up.stream("POST", "/s", json={}) as response:
        async for chunk in response.aiter_bytes():
            if b"[DONE]" in chunk:
                break


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_leaving_a_finished_stream_does_not_wait_for_the_rest_of_its_body(
        fresh: FakeUpstream, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "DRAIN_SECONDS", 60.0)  # a drain in the caller's way would hang here
    gate = Gate()
    fresh.add("/s", sse_reply([{"n": 1}, "[DONE]", gate]))

    async def work(up: Upstream) -> None:
        async with asyncio.timeout(HANG):
            await read_to_done(up)
        # The caller is done while the upstream has not ended its body (the gate is still closed).
        assert fresh.streams_finished == 0
        if transport in POOLING:  # which read the rest in the background (httpx drops the connection)
            assert not fresh.disconnected.is_set()
        gate.open()

    run(transport, fresh.url, work)


@pytest.mark.parametrize("transport", POOLING)
def test_a_drained_connection_goes_back_to_the_pool(fresh: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
                                                     transport: str) -> None:
    monkeypatch.setattr(upstream_module, "DRAIN_SECONDS", 60.0)
    gate = Gate()
    fresh.add("/s", sse_reply([{"n": 1}, "[DONE]", gate]), sse_reply([{"n": 2}], done=True))

    async def work(up: Upstream) -> None:
        await read_to_done(up)
        gate.open()  # the body ends: the background drain reads it and releases the connection
        await up.drained()
        await read_to_done(up)

    run(transport, fresh.url, work)
    assert fresh.requests[0].peer == fresh.requests[1].peer
    assert not fresh.disconnected.is_set()


@pytest.mark.parametrize("transport", POOLING)
def test_a_body_left_open_past_the_drain_time_loses_its_connection(fresh: FakeUpstream,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   transport: str) -> None:
    monkeypatch.setattr(upstream_module, "DRAIN_SECONDS", 0.05)
    fresh.add("/s", sse_reply([{"n": 1}, "[DONE]", Gate()]), sse_reply([{"n": 2}], done=True))

    async def work(up: Upstream) -> None:
        await read_to_done(up)
        await up.drained()
        await read_to_done(up)

    run(transport, fresh.url, work)
    assert fresh.disconnected.wait(HANG)  # closed, not left hanging
    assert fresh.requests[0].peer != fresh.requests[1].peer


def test_aclose_lets_a_drain_finish(fresh: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "DRAIN_SECONDS", 60.0)
    gate = Gate()
    fresh.add("/s", sse_reply([{"n": 1}, "[DONE]", gate]))

    async def main() -> None:
        up = Upstream(fresh.url, name="up")
        await up.start()
        await read_to_done(up)
        closing = asyncio.create_task(up.aclose())
        for _ in range(50):  # aclose runs as far as it can without the upstream (a cancelling one: to the end)
            await asyncio.sleep(0)
        assert not closing.done()  # it waits for the drain, which waits for the body's end (the gate)
        gate.open()
        await closing

    asyncio.run(main())
    assert fresh.streams_finished == 1  # the upstream ended its body; it was not cut off


# -- the pool's slots ----------------------------------------------------------------------------------------------


def test_slots_are_taken_at_once_while_free_and_handed_to_waiters_in_order() -> None:
    async def main() -> list[str]:
        slots = upstream_module._Slots(1)
        assert slots.take() and not slots.take()  # one slot: the second must wait
        served: list[str] = []

        async def waiter(name: str) -> None:
            await slots.wait()
            served.append(name)

        tasks = [asyncio.create_task(waiter(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        assert not slots.take()  # others wait first: no overtaking them
        slots.release()  # to "a", not back to the pool
        await asyncio.sleep(0)
        assert served == ["a"] and slots.free == 0
        slots.release()
        await asyncio.gather(*tasks)
        slots.release()
        assert slots.free == 1 and slots.take()
        return served

    assert asyncio.run(main()) == ["a", "b"]


def test_a_slot_handed_to_a_waiter_that_gave_up_goes_to_the_next() -> None:
    async def main() -> tuple[bool, int]:
        slots = upstream_module._Slots(1)
        assert slots.take()
        first = asyncio.create_task(slots.wait())
        second = asyncio.create_task(slots.wait())
        await asyncio.sleep(0)
        slots.release()  # "first" is handed the slot ...
        first.cancel()  # ... and gives up before it runs: the slot must not be lost
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, HANG)
        slots.release()
        return second.done(), slots.free

    assert asyncio.run(main()) == (True, 1)


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    async def main() -> int:
        slots = upstream_module._Slots(1)
        assert slots.take()
        waiting = asyncio.create_task(slots.wait())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        slots.release()  # nobody waits now: back to the pool
        return slots.free

    assert asyncio.run(main()) == 1


def test_urls_are_made_once_per_path_and_the_cache_is_bounded(fake: FakeUpstream,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream_module, "URL_CACHE_SIZE", 3)
    fake.json("/m/a:b", {"ok": True})

    async def work(up: Upstream) -> tuple[bool, int, Any]:
        same = up._aiohttp_url("/m/a%3Ab") is up._aiohttp_url("/m/a%3Ab")
        for i in range(10):
            up._aiohttp_url(f"/other/{i}")
        answer = (await up.request("POST", "/m/a%3Ab", json={})).json()
        return same, len(up._urls), answer

    same, size, answer = run("aiohttp", fake.url, work)
    assert same and size <= 3
    assert answer == {"ok": True}
    assert fake.requests[-1].raw_path == "/m/a%3Ab"  # the escape the adapter made is kept


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_finished_stream_leaves_no_reader_for_the_loop_to_close(fake: FakeUpstream, transport: str) -> None:
    """A provider's stream that ends at ``[DONE]`` closes its readers
    itself: none of Portway's is left to the loop's async-generator
    finalizer, which closes it in a task scheduled through the loop's
    thread-safe wake-up (a write and a read on the loop's self-pipe, per
    stream).  (httpx leaves one of its own, inside ``aiter_bytes``.)"""
    from portway.config import ProviderConfig
    from portway.formats.openai import OpenAICompatibleProvider
    from portway.testing.wire import openai_chunk

    fake.add("/v1/chat/completions", sse_reply(
        [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "hi"}), openai_chunk({}, "stop")],
        done=True))
    provider = OpenAICompatibleProvider("up", ProviderConfig(type="openai", api_key="k", base_url=fake.url + "/v1",
                                                             http_client=transport))

    async def main() -> tuple[list[Any], list[str]]:
        left: list[str] = []
        hooks = sys.get_asyncgen_hooks()

        def finalizer(agen: Any) -> None:
            if Path(agen.ag_code.co_filename).is_relative_to(Path(portway.__file__).parent):
                left.append(agen.__qualname__)
            hooks.finalizer(agen)

        sys.set_asyncgen_hooks(hooks.firstiter, finalizer)
        await provider.start()
        try:
            batches = [batch async for batch in provider.chat_stream_batches({"model": "m", "messages": []}, None)]
            gc.collect()
            await asyncio.sleep(0)
            return batches, left
        finally:
            await provider.close()

    batches, left = asyncio.run(main())
    assert [c["choices"][0]["delta"].get("content") for batch in batches for c in batch] == ["", "hi", None]
    assert left == []

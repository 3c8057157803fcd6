"""Caps on what an upstream may send: a whole body (``max_response_bytes``)
and one streamed event (``max_event_bytes``), on both transports.  A cap
hit is a classified 502 that names the cap and its config key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import openai
import pytest

from portway.errors import ProviderError
from portway.testing import FakeUpstream, Gate, Reply, sse_reply
from portway.upstream import Upstream

TRANSPORTS = ["httptools", "aiohttp", "httpx"]
BIG = b'{"pad": "' + b"x" * 5000 + b'"}'


def failure(transport: str, base_url: str, work: Callable[[Upstream], Awaitable[Any]], **options: Any) -> ProviderError:
    async def main() -> Any:
        up = Upstream(base_url, name="up", transport=transport, **options)
        await up.start()
        try:
            return await work(up)
        finally:
            await up.aclose()

    with pytest.raises(ProviderError) as info:
        asyncio.run(main())
    assert (info.value.kind, info.value.status, info.value.provider) == ("server_error", 502, "up")
    return info.value


@pytest.fixture(scope="module")
def fake_module() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def fake(fake_module: FakeUpstream) -> FakeUpstream:
    return fake_module.reset()


async def request(up: Upstream) -> Any:
    return await up.request("POST", "/x", json={})


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reply", [
    pytest.param(Reply(body=BIG), id="content-length"),
    pytest.param(Reply(body=BIG, gzip=True), id="gzip"),  # small on the wire, large decoded
    pytest.param(Reply(chunks=[BIG[:3000], BIG[3000:]]), id="chunked"),
])
def test_a_body_over_max_response_bytes_is_refused(fake: FakeUpstream, transport: str, reply: Reply) -> None:
    fake.add("/x", reply)
    error = failure(transport, fake.url, request, max_response_bytes=4096)
    assert error.message == "provider 'up': the response body from the upstream is larger than max_response_bytes " \
                            "(4096 bytes)"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_body_at_max_response_bytes_is_read(fake: FakeUpstream, transport: str) -> None:
    fake.add("/x", Reply(chunks=[BIG[:3000], BIG[3000:]]))

    async def main() -> bytes:
        up = Upstream(fake.url, transport=transport, max_response_bytes=len(BIG))
        await up.start()
        try:
            return (await request(up)).content
        finally:
            await up.aclose()

    assert asyncio.run(main()) == BIG


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_streamed_error_body_is_capped_too(fake: FakeUpstream, transport: str) -> None:
    fake.add("/s", Reply(status=500, chunks=[BIG]))

    async def work(up: Upstream) -> bytes:
        async with up.stream("POST", "/s", json={}) as response:
            return await response.aread()

    failure(transport, fake.url, work, max_response_bytes=4096)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stream_that_never_ends_its_event_is_refused_at_max_event_bytes(fake_upstream: FakeUpstream,
                                                                         transport: str) -> None:
    fake = fake_upstream  # a fresh one: the test watches the connection end
    gate = Gate()  # the upstream never ends the body either: only the cap can stop the read
    fake.add("/s", sse_reply([{"n": 1}, b"data: " + b"x" * 1000, *[b"x" * 1000] * 4, gate]))
    seen: list[str] = []

    async def work(up: Upstream) -> None:
        async with up.stream("POST", "/s", json={}) as response:
            async for events in response.aiter_event_batches():
                seen.extend(event.data for event in events)

    error = failure(transport, fake.url, work, max_event_bytes=2048)
    assert error.message == "provider 'up': a stream event from the upstream is larger than max_event_bytes " \
                            "(2048 bytes)"
    assert seen == ['{"n":1}']
    assert fake.disconnected.wait(10)  # the connection is dropped, not read on


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ndjson_line_is_capped_by_max_event_bytes(fake: FakeUpstream, transport: str) -> None:
    fake.add("/s", Reply(chunks=[b'{"n": 1}\n', b'{"pad": "' + b"x" * 3000, Gate()], content_type="application/x-ndjson"))
    seen: list[Any] = []

    async def work(up: Upstream) -> None:
        async with up.stream("POST", "/s", json={}) as response:
            async for value in response.aiter_ndjson():
                seen.append(value)

    error = failure(transport, fake.url, work, max_event_bytes=2048)
    assert error.message == "provider 'up': a stream line from the upstream is larger than max_event_bytes " \
                            "(2048 bytes)"
    assert seen == [{"n": 1}]


# -- as the client sees it ----------------------------------------------------------------------------------


def config(upstream: FakeUpstream, **provider: Any) -> dict[str, Any]:
    return {"providers": {"oai": {"type": "openai", "api_key": "sk-test-secret-123456",
                                  "base_url": upstream.url + "/v1", **provider}}}


def test_the_client_gets_a_502_naming_max_response_bytes(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    fake_upstream.add("/v1/chat/completions", Reply(body=BIG))
    client = gateway_server(config(fake_upstream, max_response_bytes=4096)).openai_client()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="oai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert info.value.body["message"] == (  # type: ignore[index]
        "provider 'oai': the response body from the upstream is larger than max_response_bytes (4096 bytes)")


def test_the_client_gets_a_502_naming_max_event_bytes(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    fake_upstream.add("/v1/chat/completions", sse_reply([b"data: " + b"x" * 3000, Gate()]))
    client = gateway_server(config(fake_upstream, max_event_bytes=2048)).openai_client()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="oai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                       stream=True)
    assert info.value.status_code == 502
    assert info.value.body["message"] == (  # type: ignore[index]
        "provider 'oai': a stream event from the upstream is larger than max_event_bytes (2048 bytes)")

"""The upstream HTTP seam, on both transports, against a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from portway.errors import ProviderError
from portway.testing import FakeUpstream, Reply, free_port, json_reply, sse_reply
from portway.upstream import Upstream

TRANSPORTS = ["aiohttp", "httpx"]


def run(transport: str, base_url: str, work: Callable[[Upstream], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        upstream = Upstream(base_url, name="up", headers={"authorization": "Bearer k"}, transport=transport, **options)
        await upstream.start()
        try:
            return await work(upstream)
        finally:
            await upstream.aclose()

    return asyncio.run(main())


@pytest.fixture
def fake() -> Any:
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
    fake.add("/s", sse_reply([{"n": i} for i in range(5)], delay=0.01))

    async def work(up: Upstream) -> list[bytes]:
        async with up.stream("POST", "/s", json={}) as response:
            assert response.status == 200
            return [chunk async for chunk in response.aiter_bytes()]

    pieces = run(transport, fake.url, work)
    assert b"".join(pieces).count(b"data: ") == 5
    assert len(pieces) >= 2  # not buffered into one


def test_a_finished_stream_leaves_its_connection_for_the_next_request(fake: FakeUpstream) -> None:
    fake.add("/s", sse_reply([{"n": 1}], done=True))

    async def work(up: Upstream) -> None:
        for _ in range(3):
            async with up.stream("POST", "/s", json={}) as response:
                async for chunk in response.aiter_bytes():
                    if b"[DONE]" in chunk:
                        break  # the provider stops reading at its end marker

    run("aiohttp", fake.url, work)
    assert len({request.peer for request in fake.requests}) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_a_classified_error_naming_the_provider(transport: str) -> None:
    async def work(up: Upstream) -> Any:
        return await up.request("POST", "/x", json={})

    with pytest.raises(ProviderError) as failure:
        run(transport, f"http://127.0.0.1:{free_port()}", work)
    assert failure.value.kind == "connection" and failure.value.provider == "up"
    assert "provider 'up'" in failure.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_upstream_times_out(fake: FakeUpstream, transport: str) -> None:
    fake.add("/slow", Reply(chunks=[b"data: {}\n\n", b"data: {}\n\n"], delay=2.0, content_type="text/event-stream"))

    async def work(up: Upstream) -> None:
        async with up.stream("POST", "/slow", json={}) as response:
            async for _ in response.aiter_bytes():
                pass

    with pytest.raises(ProviderError) as failure:
        run(transport, fake.url, work, timeout=0.3)
    assert failure.value.kind == "timeout"


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        Upstream("http://x", transport="curl")

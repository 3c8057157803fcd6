"""Minimal passthrough proxy: the floor a Python gateway can reach (target b).

Does the least any gateway must: parse the request JSON, set the model, POST it
upstream on a pooled connection, parse and re-serialise the JSON answer; streams
are relayed chunk by chunk. Two routes: ``/v1/chat/completions`` (OpenAI) and
``/v1/messages`` (Anthropic: also sends the key and API version headers, and passes
the client's ``anthropic-beta`` on, without which Claude Code's request is refused).
Run: ``uvicorn bench.floor_proxy:app --loop uvloop --http httptools``.
FLOOR_UPSTREAM / FLOOR_UPSTREAM_STREAM are base URLs ending in /v1.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9000/v1") + "/chat/completions"
UPSTREAM_STREAM = os.environ.get("FLOOR_UPSTREAM_STREAM", UPSTREAM.removesuffix("/chat/completions")) + "/chat/completions"
MESSAGES = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:9000/v1") + "/messages"
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-key"}
ANTHROPIC_HEADERS = {"content-type": "application/json", "x-api-key": "bench-key", "anthropic-version": "2023-06-01"}
session: aiohttp.ClientSession


def relay(upstream: aiohttp.ClientResponse) -> StreamingResponse:
    """The upstream's stream, each read passed on as it came."""

    async def chunks() -> AsyncIterator[bytes]:
        async with upstream:
            async for chunk in upstream.content.iter_any():
                yield chunk

    return StreamingResponse(chunks(), status_code=upstream.status, media_type="text/event-stream")


async def chat(request: Request) -> Response:
    body = orjson.loads(await request.body())
    body["model"] = "gpt-4o-mini"  # the alias mapping every gateway does
    if body.get("stream"):
        return relay(await session.post(UPSTREAM_STREAM, data=orjson.dumps(body), headers=HEADERS))
    async with session.post(UPSTREAM, data=orjson.dumps(body), headers=HEADERS) as upstream:
        data = orjson.loads(await upstream.read())
    return Response(orjson.dumps(data), status_code=upstream.status, media_type="application/json")


async def messages(request: Request) -> Response:
    body = orjson.loads(await request.body())
    body["model"] = "claude-opus-5-5"
    headers = ANTHROPIC_HEADERS
    beta = request.headers.get("anthropic-beta")
    if beta:
        headers = {**headers, "anthropic-beta": beta}
    if body.get("stream"):
        return relay(await session.post(MESSAGES, data=orjson.dumps(body), headers=headers))
    async with session.post(MESSAGES, data=orjson.dumps(body), headers=headers) as upstream:
        data = orjson.loads(await upstream.read())
    return Response(orjson.dumps(data), status_code=upstream.status, media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global session
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    # Say which HTTP parser and loop uvicorn really picked: the harness records it.
    print(
        f"floor_proxy: loop={type(asyncio.get_running_loop()).__module__} "
        f"httptools={'uvicorn.protocols.http.httptools_impl' in sys.modules} "
        f"h11={'uvicorn.protocols.http.h11_impl' in sys.modules}",
        file=sys.stderr,
        flush=True,
    )
    yield
    await session.close()


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                       Route("/v1/messages", messages, methods=["POST"])], lifespan=lifespan)

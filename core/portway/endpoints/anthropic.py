"""The Anthropic Messages API, ``POST /v1/messages``, in front of any
provider: the request is translated to the canonical (OpenAI) form, runs
the same pipeline as ``/v1/chat/completions``, and the answer (or stream)
is translated back.  Every error here is in Anthropic's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import sse
from portway.context import RequestContext
from portway.endpoints.common import JSONResponse, handle, relay_stream, route_headers
from portway.formats.anthropic import (
    OpenAIStreamToAnthropic,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from portway.gateway import Gateway
from portway.schemas.anthropic import MessagesRequest
from portway.streaming import EventStreamResponse, unless_disconnected


async def messages(request: Request) -> Response:
    return await handle(request, "messages", MessagesRequest, _messages, client_format="anthropic",
                        translate=anthropic_request_to_openai)


async def _messages(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    if ctx.stream:
        batches = await unless_disconnected(request.receive, gateway.open_stream(ctx))
        body = relay_stream(gateway, ctx, _encode(batches),
                            lambda error: sse.encode(error.anthropic_body(), event="error"))
        return EventStreamResponse(body, headers=route_headers(ctx))
    response = await unless_disconnected(request.receive, gateway.chat(ctx))
    return JSONResponse(openai_response_to_anthropic(response), headers=route_headers(ctx))


async def _encode(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    converter = OpenAIStreamToAnthropic()
    async with aclosing(batches):
        async for batch in batches:
            events = [event for chunk in batch for event in converter.feed(chunk)]
            if events:
                yield b"".join([sse.encode(data, event=name) for name, data in events])
        yield b"".join([sse.encode(data, event=name) for name, data in converter.finish()])

"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/embeddings``,
``/v1/models``, and ``/health``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import sse
from portway.context import RequestContext
from portway.endpoints.common import (
    JSONResponse,
    authenticate,
    error_response,
    handle,
    is_authenticated,
    relay_stream,
    request_id_of,
    route_headers,
)
from portway.errors import PortwayError
from portway.gateway import Gateway
from portway.schemas.openai import ChatCompletionRequest, EmbeddingsRequest
from portway.streaming import EventStreamResponse, unless_disconnected


async def chat_completions(request: Request) -> Response:
    return await handle(request, "chat.completions", ChatCompletionRequest, _chat)


async def _chat(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    if ctx.stream:
        _, batches = await unless_disconnected(request.receive, gateway.open_stream(ctx))
        body = relay_stream(gateway, ctx, _encode(batches), lambda error: sse.encode(error.openai_body()))
        return EventStreamResponse(body, headers=route_headers(ctx))
    response = await unless_disconnected(request.receive, gateway.chat(ctx))
    return JSONResponse(response, headers=route_headers(ctx))


async def _encode(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    async with aclosing(batches):
        async for batch in batches:
            yield b"".join([sse.encode(chunk) for chunk in batch])  # what arrived together leaves in one write
        yield sse.DONE


async def embeddings(request: Request) -> Response:
    return await handle(request, "embeddings", EmbeddingsRequest, _embeddings)


async def _embeddings(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    response = await unless_disconnected(request.receive, gateway.embeddings(ctx))
    return JSONResponse(response, headers=route_headers(ctx))


async def models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        authenticate(gateway, request)
    except PortwayError as error:
        return error_response(error, "openai", request_id_of(request))
    created = gateway.started_at
    data = [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in gateway.model_ids()]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    """Public, for load balancers: only ``{"status": "ok"}``.  What could
    help an attacker (provider names, why some are unavailable, plugin
    errors) is shown only to a caller that presents the master key."""
    gateway: Gateway = request.app.state.gateway
    if gateway.master_key_bytes is not None and not is_authenticated(gateway, request):
        return JSONResponse({"status": "ok"})
    return JSONResponse({
        "status": "ok",
        "providers": sorted(gateway.providers),
        "unavailable": gateway.unavailable,
        "plugin_errors": gateway.hooks.errors,
        "plugins_failed": {info.name: info.error for info in gateway.plugins if info.error},
        "uptime_s": round(time.time() - gateway.started_at, 3),
    })

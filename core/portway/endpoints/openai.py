"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/embeddings``,
``/v1/models``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import sse
from portway.context import RequestContext
from portway.endpoints.common import (
    JSONResponse, check_key, client_gone, context_for, error_response, new_request_id, presented_key,
    read_json, route_headers,
)
from portway.errors import PortwayError
from portway.gateway import Gateway
from portway.schemas import validate
from portway.schemas.openai import ChatCompletionRequest, EmbeddingsRequest
from portway.streaming import ClientDisconnected, EventStreamResponse, unless_disconnected

log = logging.getLogger("portway.endpoints")


async def chat_completions(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    ctx: RequestContext | None = None
    try:
        key = presented_key(request)
        check_key(gateway.master_key, key)
        body = await read_json(request, gateway.config.server.max_body_bytes)
        validate(ChatCompletionRequest, body)
        ctx = context_for(request, "chat.completions", body, key)
        if ctx.stream:
            chunks = await unless_disconnected(request.receive, gateway.open_stream(ctx))
            return EventStreamResponse(_openai_sse(gateway, ctx, chunks), headers=route_headers(ctx))
        response = await unless_disconnected(request.receive, gateway.chat(ctx))
        result = JSONResponse(response, headers=route_headers(ctx))
    except ClientDisconnected:
        result = client_gone(ctx)
    except PortwayError as error:
        result = _failed(gateway, ctx, error, request)
    except Exception as error:  # never a traceback to the client
        result = _crashed(gateway, ctx, error, request)
    if ctx is not None:
        gateway.finish(ctx)
    return result


async def _openai_sse(gateway: Gateway, ctx: RequestContext, batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    try:
        async for batch in batches:
            yield b"".join([sse.encode(chunk) for chunk in batch])  # what arrived together leaves in one write
        yield sse.DONE
    except PortwayError as error:
        ctx.error, ctx.status = error, error.status
        yield sse.encode(error.openai_body())
    except asyncio.CancelledError:
        ctx.status = 499  # the client went away; the upstream request is closed with the iterator
        raise
    except Exception as error:
        log.exception("stream %s failed", ctx.request_id)
        ctx.error, ctx.status = error, 500
        yield sse.encode(PortwayError("internal error while streaming", kind="server_error").openai_body())
    finally:
        gateway.finish(ctx)


def _failed(gateway: Gateway, ctx: RequestContext | None, error: PortwayError, request: Request,
            client_format: str = "openai") -> Response:
    request_id = ctx.request_id if ctx else request.headers.get("x-request-id") or new_request_id()
    if ctx is not None:
        ctx.error, ctx.status = error, error.status
    return error_response(error, client_format, request_id)


def _crashed(gateway: Gateway, ctx: RequestContext | None, error: Exception, request: Request,
             client_format: str = "openai") -> Response:
    request_id = ctx.request_id if ctx else new_request_id()
    log.exception("request %s failed", request_id)
    wrapped = PortwayError(f"internal error (request id {request_id})", kind="server_error")
    if ctx is not None:
        ctx.error, ctx.status = error, 500
    return error_response(wrapped, client_format, request_id)


async def embeddings(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    ctx: RequestContext | None = None
    try:
        key = presented_key(request)
        check_key(gateway.master_key, key)
        body = await read_json(request, gateway.config.server.max_body_bytes)
        validate(EmbeddingsRequest, body)
        ctx = context_for(request, "embeddings", body, key)
        response = await unless_disconnected(request.receive, gateway.embeddings(ctx))
        result: Response = JSONResponse(response, headers=route_headers(ctx))
    except ClientDisconnected:
        result = client_gone(ctx)
    except PortwayError as error:
        result = _failed(gateway, ctx, error, request)
    except Exception as error:
        result = _crashed(gateway, ctx, error, request)
    if ctx is not None:
        gateway.finish(ctx)
    return result


async def models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        check_key(gateway.master_key, presented_key(request))
    except PortwayError as error:
        return error_response(error, "openai", new_request_id())
    created = gateway.started_at
    data = [{"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in gateway.model_ids()]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    return JSONResponse({
        "status": "ok",
        "providers": sorted(gateway.providers),
        "unavailable": gateway.unavailable,
        "plugin_errors": gateway.hooks.errors,
        "uptime_s": round(time.time() - gateway.started_at, 3),
    })

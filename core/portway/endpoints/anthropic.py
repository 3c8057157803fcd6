"""The Anthropic Messages API, ``POST /v1/messages``, in front of any
provider: the request is translated to the canonical (OpenAI) form, runs
the same pipeline as ``/v1/chat/completions``, and the answer (or stream)
is translated back.  Every error here is in Anthropic's shape."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import sse
from portway.context import RequestContext
from portway.endpoints.common import (
    JSONResponse, check_key, client_gone, context_for, presented_key, read_json, route_headers,
)
from portway.endpoints.openai import _crashed, _failed
from portway.errors import PortwayError
from portway.formats.anthropic import (
    OpenAIStreamToAnthropic, anthropic_request_to_openai, openai_response_to_anthropic,
)
from portway.gateway import Gateway
from portway.schemas import validate
from portway.schemas.anthropic import MessagesRequest
from portway.streaming import ClientDisconnected, EventStreamResponse, unless_disconnected

log = logging.getLogger("portway.endpoints")


async def messages(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    ctx: RequestContext | None = None
    try:
        key = presented_key(request)
        check_key(gateway.master_key, key)
        body = await read_json(request, gateway.config.server.max_body_bytes)
        validate(MessagesRequest, body)
        ctx = context_for(request, "messages", anthropic_request_to_openai(body), key, client_format="anthropic")
        if ctx.stream:
            chunks = await unless_disconnected(request.receive, gateway.open_stream(ctx))
            return EventStreamResponse(_anthropic_sse(gateway, ctx, chunks), headers=route_headers(ctx))
        response = await unless_disconnected(request.receive, gateway.chat(ctx))
        result: Response = JSONResponse(openai_response_to_anthropic(response), headers=route_headers(ctx))
    except ClientDisconnected:
        result = client_gone(ctx)
    except PortwayError as error:
        result = _failed(gateway, ctx, error, request, "anthropic")
    except Exception as error:
        result = _crashed(gateway, ctx, error, request, "anthropic")
    if ctx is not None:
        gateway.finish(ctx)
    return result


async def _anthropic_sse(gateway: Gateway, ctx: RequestContext, batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    converter = OpenAIStreamToAnthropic()
    try:
        async for batch in batches:
            events = [event for chunk in batch for event in converter.feed(chunk)]
            if events:
                yield b"".join([sse.encode(data, event=name) for name, data in events])
        yield b"".join([sse.encode(data, event=name) for name, data in converter.finish()])
    except PortwayError as error:
        ctx.error, ctx.status = error, error.status
        yield sse.encode(error.anthropic_body(), event="error")
    except asyncio.CancelledError:
        ctx.status = 499
        raise
    except Exception as error:
        log.exception("stream %s failed", ctx.request_id)
        ctx.error, ctx.status = error, 500
        yield sse.encode(PortwayError("internal error while streaming", kind="server_error").anthropic_body(),
                         event="error")
    finally:
        gateway.finish(ctx)

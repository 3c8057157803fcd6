"""The Anthropic Messages API, ``POST /v1/messages``, in front of any
provider: the request is translated to the canonical (OpenAI) form, runs
the same pipeline as ``/v1/chat/completions``, and the answer (or stream)
is translated back.  For a target that speaks the Messages API itself, the
request goes as the client sent it and the answer comes back as the
upstream sent it (see :mod:`portway.native`).  Every error here is in
Anthropic's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import sse, tokens
from portway.context import RequestContext
from portway.endpoints.common import (
    JSONResponse,
    authenticate,
    context_for,
    error_response,
    handle,
    read_json,
    relay_stream,
    request_id_of,
    route_headers,
    stream_response,
)
from portway.errors import PortwayError
from portway.formats.anthropic import (
    OpenAIStreamToAnthropic,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from portway.formats.anthropic.passthrough import ANTHROPIC
from portway.gateway import Gateway
from portway.native import NativeEvent, NativeRequest
from portway.schemas import validate
from portway.schemas.anthropic import CountTokensEnvelope, MessagesEnvelope, MessagesRequest
from portway.streaming import ClientDisconnected, unless_disconnected


async def messages(request: Request) -> Response:
    return await handle(request, "messages", MessagesEnvelope, _messages, client_format="anthropic",
                        translate=_native)


def _native(body: dict[str, Any]) -> tuple[None, NativeRequest]:
    """The request as sent, for a target that speaks the Messages API as it
    is (see :mod:`portway.native`); the canonical view is made only if
    something reads it (a hook, or a target that needs a translation)."""
    return None, NativeRequest(ANTHROPIC, body, [], to_canonical=_canonical)


def _canonical(native: NativeRequest) -> dict[str, Any]:
    validate(MessagesRequest, native.body)
    return anthropic_request_to_openai(native.body, native.origin)


async def _messages(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    if ctx.stream:
        fmt, batches = await unless_disconnected(request.receive, gateway.open_stream(ctx))
        encoded = _relay_as_sent(batches) if fmt == "anthropic" else _encode(batches)
        body = relay_stream(gateway, ctx, encoded, lambda error: sse.encode(error.anthropic_body(), event="error"))
        return stream_response(gateway, ctx, body)
    fmt, response = await unless_disconnected(request.receive, gateway.answer(ctx))
    if fmt != "anthropic":
        response = openai_response_to_anthropic(response)
    return JSONResponse(response, headers=route_headers(ctx))


async def _relay_as_sent(batches: AsyncIterator[list[NativeEvent]]) -> AsyncIterator[bytes]:
    """An Anthropic upstream's own events, byte for byte (but what hooks changed)."""
    async with aclosing(batches):
        async for batch in batches:
            yield b"".join([event.encode() for event in batch])


async def _encode(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    converter = OpenAIStreamToAnthropic()
    async with aclosing(batches):
        async for batch in batches:
            events = [event for chunk in batch for event in converter.feed(chunk)]
            if events:
                yield b"".join([sse.encode(data, event=name) for name, data in events])
        yield b"".join([sse.encode(data, event=name) for name, data in converter.finish()])


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens`` (the anthropic SDK's
    ``messages.count_tokens``, Claude Code): the model's provider counts
    when it has a counting API (Anthropic, Claude on Vertex and Bedrock);
    otherwise the gateway's estimate (:mod:`portway.tokens`), with
    ``x-portway-token-count: estimate`` saying so (``provider`` when counted)."""
    gateway: Gateway = request.app.state.gateway
    request_id = request_id_of(request)
    try:
        key = authenticate(gateway, request)
        body, _ = await read_json(request, gateway.config.server.max_body_bytes)
        validate(CountTokensEnvelope, body)
        ctx = context_for(request, request_id, "count_tokens", None, key, "anthropic",
                          NativeRequest(ANTHROPIC, body, [], to_canonical=_canonical))
        target = gateway.resolve(body["model"]).targets[0]
        counted = await unless_disconnected(
            request.receive, target.provider.count_tokens({**body, "model": target.model}, ctx))
    except ClientDisconnected:
        return Response(status_code=499)
    except PortwayError as error:
        return error_response(error, "anthropic", request_id)
    headers = {"x-request-id": request_id, "request-id": request_id,
               "x-portway-token-count": "provider" if counted is not None else "estimate"}
    return JSONResponse({"input_tokens": counted if counted is not None else tokens.estimate(body)}, headers=headers)

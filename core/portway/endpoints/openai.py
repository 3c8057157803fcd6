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
    stream_response,
)
from portway.errors import PortwayError
from portway.gateway import Gateway
from portway.schemas.openai import ChatCompletionRequest, EmbeddingsRequest
from portway.streaming import unless_disconnected


async def chat_completions(request: Request) -> Response:
    return await handle(request, "chat.completions", ChatCompletionRequest, _chat)


async def _chat(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    if ctx.stream:
        _, batches = await unless_disconnected(request.receive, gateway.open_stream(ctx))
        body = relay_stream(gateway, ctx, _encode(batches), lambda error: sse.encode(error.openai_body()))
        return stream_response(gateway, ctx, body)
    _, response = await unless_disconnected(request.receive, gateway.answer(ctx))  # (chat(), one layer less)
    return JSONResponse(response, headers=route_headers(ctx))


async def _encode(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    async with aclosing(batches):
        async for batch in batches:
            yield sse.encode_all(batch)  # what arrived together leaves in one write
        yield sse.DONE


async def embeddings(request: Request) -> Response:
    return await handle(request, "embeddings", EmbeddingsRequest, _embeddings)


async def _embeddings(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    response = await unless_disconnected(request.receive, gateway.embeddings(ctx))
    return JSONResponse(response, headers=route_headers(ctx))


async def models(request: Request) -> Response:
    """``GET /v1/models``: every alias and ``<provider>/<model>`` the config
    exposes, each with what the catalog knows of it (``context_window``,
    ``max_output_tokens``, ``pricing`` per million tokens, ``capabilities``)."""
    gateway: Gateway = request.app.state.gateway
    try:
        authenticate(gateway, request)
    except PortwayError as error:
        return error_response(error, "openai", request_id_of(request))
    data = [_model_entry(gateway, model_id, owner) for model_id, owner in gateway.model_ids()]
    return JSONResponse({"object": "list", "data": data})


async def model(request: Request) -> Response:
    """``GET /v1/models/{id}``: one alias or ``<provider>/<model>`` (ids
    contain ``/``), as the openai SDK's ``models.retrieve`` reads it; 404
    for an id the config does not expose."""
    gateway: Gateway = request.app.state.gateway
    request_id = request_id_of(request)
    try:
        authenticate(gateway, request)
        model_id: str = request.path_params["model_id"]
        owner = gateway.model_owner(model_id)
        if owner is None:
            raise PortwayError(f"model {model_id!r} is not configured", kind="not_found", code="model_not_found",
                               param="model")
    except PortwayError as error:
        return error_response(error, "openai", request_id)
    return JSONResponse(_model_entry(gateway, model_id, owner), headers={"x-request-id": request_id})


def _model_entry(gateway: Gateway, model_id: str, owner: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": model_id, "object": "model", "created": gateway.started_at, "owned_by": owner}
    info = gateway.model_info(model_id)
    if info is not None:
        entry.update(info.public())
    return entry


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

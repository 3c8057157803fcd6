"""``POST /v1/compare``: one chat request, several models, side by side.

The body is a Chat Completions request with ``models`` (a list of model
names: aliases or ``<provider>/<model>``, at most :data:`MAX_MODELS`, no
repeats) where ``model`` would be.  Each model gets its own request through
the whole pipeline — hooks, routing, retries, fallbacks, the catalog's cost,
the request log (one ``request_finished`` each, with request id
``<id>.<n>``) — and all of them run at once.  One failing does not fail the
others::

    {"object": "compare", "id": "req_…",
     "results": [
       {"model": "fast", "status": 200, "provider": "oai", "served_model": "gpt-4o-mini",
        "latency_ms": 412.3, "usage": {...}, "cost": 0.000021, "response": {<chat.completion>}},
       {"model": "claude/claude-sonnet-4-5", "status": 429, "provider": "claude", ...,
        "error": {"message": "...", "type": "rate_limit_error", "code": ...}}]}

``cost`` is null when the catalog has no price for the model (never zero
for that).  The results come in the order of ``models``.

With ``"stream": true`` the answer is one SSE stream carrying every model's
chunks as they arrive, each tagged: ``{"model": "fast", "chunk":
{<chat.completion.chunk>}}``; a model that fails sends ``{"model": …,
"error": {…}}``; each model ends with ``{"model": …, "done": true, "status",
"latency_ms", "time_to_first_token_ms", "usage", "cost", …}``; the stream
ends with ``data: [DONE]`` after the last model is done.  A client that
leaves cancels every upstream request.

A request that is not a valid chat request (checked once per model, as
``/v1/chat/completions`` checks it) is a 400 in OpenAI's shape before
anything is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import serialization, sse
from portway.context import RequestContext
from portway.endpoints.common import (
    JSONResponse,
    authenticate,
    client_error,
    context_for,
    error_response,
    read_json,
    request_id_of,
)
from portway.errors import PortwayError, ValidationFailed
from portway.gateway import Gateway
from portway.schemas import validate
from portway.schemas.openai import ChatCompletionRequest
from portway.streaming import ClientDisconnected, EventStreamResponse, unless_disconnected

#: The most models one compare request may name.
MAX_MODELS = 8


def models_of(body: Any) -> list[str]:
    """The ``models`` of a compare request, or a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    if "model" in body:
        raise ValidationFailed("a compare request names its models in 'models' (a list), not 'model'",
                               param="model")
    models = body.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        raise ValidationFailed("'models' must be a non-empty list of model names", param="models")
    if len(models) > MAX_MODELS:
        raise ValidationFailed(f"'models' names {len(models)} models; at most {MAX_MODELS} can be compared at once",
                               param="models")
    if len(set(models)) != len(models):
        raise ValidationFailed("'models' names a model twice", param="models")
    return models


async def compare(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    request_id = request_id_of(request)
    try:
        key = authenticate(gateway, request)
        body, size = await read_json(request, gateway.config.server.max_body_bytes)
        models = models_of(body)
        shared = {k: v for k, v in body.items() if k != "models"}
        contexts = []
        for n, model in enumerate(models):
            one = {**shared, "model": model}
            validate(ChatCompletionRequest, one)
            # Each its own copy: a hook may change one model's request in place.
            contexts.append(context_for(request, f"{request_id}.{n}", "compare", serialization.loads(
                serialization.dumps(one)), key, size=size))
    except PortwayError as error:
        return error_response(error, "openai", request_id)
    headers = {"x-request-id": request_id}
    if shared.get("stream") is True:
        return EventStreamResponse(_stream(gateway, list(zip(models, contexts, strict=True))), headers=headers)
    try:
        results = await unless_disconnected(request.receive, asyncio.gather(
            *(_answer(gateway, model, ctx) for model, ctx in zip(models, contexts, strict=True))))
    except ClientDisconnected:
        return Response(status_code=499)
    return JSONResponse({"object": "compare", "id": request_id, "results": results}, headers=headers)


async def _answer(gateway: Gateway, model: str, ctx: RequestContext) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": model}
    try:
        entry["response"] = await gateway.chat(ctx)
    except Exception as error:
        entry["error"] = _failed(ctx, error)
    finally:
        gateway.finish(ctx)
    return {**_figures(ctx), **entry}


def _failed(ctx: RequestContext, error: Exception) -> dict[str, Any]:
    """The error of one model's request, in OpenAI's shape; the context says so too."""
    return client_error(ctx, error, ctx.request_id).openai_body()["error"]


def _figures(ctx: RequestContext) -> dict[str, Any]:
    latency = ctx.latency
    first = ctx.time_to_first_token
    target = ctx.target
    return {"status": ctx.status,
            "provider": target.provider.name if target is not None else None,
            "served_model": target.model if target is not None else None,
            "latency_ms": round(latency * 1000, 1) if latency is not None else None,
            "time_to_first_token_ms": round(first * 1000, 1) if first is not None else None,
            "usage": ctx.usage, "cost": ctx.cost}


async def _stream(gateway: Gateway, runs: list[tuple[str, RequestContext]]) -> AsyncIterator[bytes]:
    """Every model's stream, merged as it arrives; see the module docstring."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def pump(model: str, ctx: RequestContext) -> None:
        try:
            _, batches = await gateway.open_stream(ctx)
            async with aclosing(batches):
                async for batch in batches:
                    if batch:
                        queue.put_nowait(b"".join([sse.encode({"model": model, "chunk": chunk}) for chunk in batch]))
        except asyncio.CancelledError:
            ctx.status = 499
            raise
        except Exception as error:
            if isinstance(error, PortwayError) and ctx.first_token_at is not None:
                gateway.log_stream_failure(ctx, error)
            queue.put_nowait(sse.encode({"model": model, "error": _failed(ctx, error)}))
        finally:
            gateway.finish(ctx)
        queue.put_nowait(sse.encode({"model": model, "done": True, **_figures(ctx)}))
        queue.put_nowait(None)

    tasks = [asyncio.create_task(pump(model, ctx)) for model, ctx in runs]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            else:
                yield item
        yield sse.DONE
    finally:
        for task in tasks:
            task.cancel()  # a client that left: every upstream request is closed
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["MAX_MODELS", "compare", "models_of"]

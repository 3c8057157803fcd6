"""The OpenAI Responses API: ``POST /v1/responses`` (streamed or not),
``GET`` / ``DELETE /v1/responses/{id}`` and
``GET /v1/responses/{id}/input_items``, in front of any provider.

A request is translated onto the canonical chat pipeline (routing,
fallbacks, hooks, logs all apply) and the answer back into a Response; a
target that speaks Responses itself (OpenAI) gets the request as it was
sent (see :mod:`portway.formats.responses_passthrough`).  Conversation state
lives in the gateway's response store (``gateway.responses``):
``previous_response_id`` is resolved from it, ``store: false`` keeps a turn
out of it, and a response is only ever visible to the key that created it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
    relay_stream,
    request_id_of,
    route_headers,
    stream_response,
)
from portway.errors import PortwayError, ValidationFailed
from portway.formats.responses import (
    OpenAIStreamToResponses,
    error_event,
    input_items,
    openai_response_to_responses,
    responses_request_to_openai,
)
from portway.formats.responses_passthrough import RESPONSES, Previous
from portway.gateway import Gateway
from portway.native import NativeEvent, NativeRequest
from portway.schemas.responses import ResponsesRequest
from portway.stores.responses import ResponseRecord
from portway.streaming import unless_disconnected


async def create(request: Request) -> Response:
    return await handle(request, "responses", ResponsesRequest, _create, translate=lambda body: (body, None))


def _not_found(response_id: str, param: str | None = None) -> PortwayError:
    return PortwayError(f"Response with id {response_id!r} not found.", kind="not_found", param=param)


async def _create(request: Request, gateway: Gateway, ctx: RequestContext) -> Response:
    body = ctx.body  # the Responses body as sent; the canonical view replaces it below
    previous: Previous | None = None
    history: list[dict[str, Any]] | None = None
    previous_id = body.get("previous_response_id")
    if previous_id:
        record = await gateway.responses.get(previous_id, ctx.key_id)
        history = await gateway.responses.history(previous_id, ctx.key_id) if record is not None else None
        if record is None or history is None:
            raise _not_found(previous_id, "previous_response_id")
        previous = Previous(history, record.native, record.provider)
        ctx.body_bytes = None  # the history makes the request larger than what the client sent
    skipped: list[ValidationFailed] = []
    ctx.body = responses_request_to_openai(body, history, skipped)
    ctx.native = NativeRequest(RESPONSES, body, [], context=previous,
                               canonical_error=skipped[0] if skipped else None)
    response_id, created_at = "resp_" + uuid.uuid4().hex, time.time()

    async def keep(answer: dict[str, Any], native: bool) -> None:
        """Store a finished turn for later previous_response_id, retrieve and input_items."""
        if body.get("store") is False or answer.get("status") == "failed":
            return
        provider = ctx.target.provider.name if ctx.target is not None else None
        await gateway.responses.put(ResponseRecord(answer, input_items(body), ctx.key_id, provider, native))

    if ctx.stream:
        fmt, batches = await unless_disconnected(request.receive, gateway.open_stream(ctx))
        if fmt == "responses":
            stream = _NativeStream(batches, keep)
        else:
            stream = _TranslatedStream(batches, OpenAIStreamToResponses(body, response_id=response_id,
                                                                        created_at=created_at), keep)
        return stream_response(gateway, ctx, relay_stream(gateway, ctx, stream.encode(), stream.error_event))
    fmt, answer = await unless_disconnected(request.receive, gateway.answer(ctx))
    if fmt != "responses":
        answer = openai_response_to_responses(answer, body, response_id=response_id, created_at=created_at)
    await keep(answer, fmt == "responses")
    return JSONResponse(answer, headers=route_headers(ctx))


Keep = Callable[[dict[str, Any], bool], Awaitable[None]]


class _TranslatedStream:
    """Canonical chunks in, Responses events out; the finished response is stored."""

    def __init__(self, batches: AsyncIterator[list[dict[str, Any]]], converter: OpenAIStreamToResponses,
                 keep: Keep) -> None:
        self.batches, self.converter, self.keep = batches, converter, keep

    async def encode(self) -> AsyncIterator[bytes]:
        async with aclosing(self.batches):
            async for batch in self.batches:
                events = [event for chunk in batch for event in self.converter.feed(chunk)]
                if events:
                    yield b"".join([sse.encode(data, event=name) for name, data in events])
            events = self.converter.finish()
            yield b"".join([sse.encode(data, event=name) for name, data in events])
        await self.keep(events[-1][1]["response"], False)

    def error_event(self, error: PortwayError) -> bytes:
        return b"".join([sse.encode(data, event=name) for name, data in self.converter.fail(error)])


class _NativeStream:
    """An upstream's own Responses events, as it sent them; its last
    response is stored."""

    def __init__(self, batches: AsyncIterator[list[NativeEvent]], keep: Keep) -> None:
        self.batches, self.keep = batches, keep
        self.sequence = -1
        self.final: dict[str, Any] | None = None

    async def encode(self) -> AsyncIterator[bytes]:
        async with aclosing(self.batches):
            async for batch in self.batches:
                for event in batch:
                    number = event.data.get("sequence_number")
                    if type(number) is int:
                        self.sequence = number
                    if event.data.get("type") in ("response.completed", "response.incomplete"):
                        self.final = event.data.get("response")
                yield b"".join([event.encode() for event in batch])
        if self.final is not None:
            await self.keep(self.final, True)

    def error_event(self, error: PortwayError) -> bytes:
        name, data = error_event(error, self.sequence + 1)
        return sse.encode(data, event=name)


# -- reading and deleting stored responses --------------------------------------------------------


async def _owned(request: Request) -> tuple[Gateway, str | None, str]:
    gateway: Gateway = request.app.state.gateway
    return gateway, authenticate(gateway, request), request.path_params["response_id"]


async def response(request: Request) -> Response:
    """``GET`` a stored response, or ``DELETE`` it."""
    try:
        gateway, key, response_id = await _owned(request)
        if request.method == "DELETE":
            if not await gateway.responses.delete(response_id, key):
                raise _not_found(response_id)
            return JSONResponse({"id": response_id, "object": "response", "deleted": True})
        record = await gateway.responses.get(response_id, key)
        if record is None:
            raise _not_found(response_id)
        return JSONResponse(record.response)
    except PortwayError as error:
        return error_response(error, "openai", request_id_of(request))


async def input_items_list(request: Request) -> Response:
    """``GET /v1/responses/{id}/input_items``: the turn's own input items,
    newest first unless ``order=asc``, ``limit`` (1-100, default 20) at a
    time, after the item ``after``."""
    try:
        gateway, key, response_id = await _owned(request)
        record = await gateway.responses.get(response_id, key)
        if record is None:
            raise _not_found(response_id)
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise PortwayError("order must be 'asc' or 'desc'", kind="bad_request", param="order")
        limit = query.get("limit", "20")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise PortwayError("limit must be a whole number from 1 to 100", kind="bad_request", param="limit")
        items = list(record.input_items)
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise PortwayError(f"no input item {after!r} in this response", kind="bad_request", param="after")
            items = items[ids.index(after) + 1:]
        page = items[:int(limit)]
        return JSONResponse({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                             "last_id": page[-1]["id"] if page else None, "has_more": len(items) > len(page)})
    except PortwayError as error:
        return error_response(error, "openai", request_id_of(request))

"""What every API endpoint shares: reading the body, checking the key,
building the context, and rendering errors in the client's API shape."""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from portway import serialization
from portway.context import RequestContext
from portway.errors import PortwayError, ValidationFailed
from portway.schemas import validate
from portway.streaming import ClientDisconnected, EventStreamResponse

if TYPE_CHECKING:
    from portway.gateway import Gateway

log = logging.getLogger("portway.endpoints")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return serialization.dumps(content)


#: Never copied into the request context, so no plugin can log them.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"})


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def error_response(error: PortwayError, client_format: str, request_id: str) -> JSONResponse:
    body = error.anthropic_body() if client_format == "anthropic" else error.openai_body()
    if client_format == "anthropic":
        body["request_id"] = request_id
    headers = {"x-request-id": request_id, **error.headers()}
    if error.provider:
        headers["x-portway-provider"] = error.provider
    return JSONResponse(body, status_code=error.status, headers=headers)


def presented_key(request: Request) -> str | None:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI SDK, and the
    Anthropic SDK since 2.14) or ``x-api-key`` (older Anthropic clients)."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value:
            return value.strip()
    return request.headers.get("x-api-key") or request.headers.get("api-key")


def check_key(master_key: str | None, presented: str | None) -> None:
    if master_key is None:
        return
    if presented is None:
        raise PortwayError("missing API key: send 'Authorization: Bearer <key>'", kind="authentication",
                           code="missing_api_key")
    if not hmac.compare_digest(presented.encode(), master_key.encode()):
        raise PortwayError("invalid API key", kind="authentication", code="invalid_api_key")


async def read_json(request: Request, limit: int) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PortwayError(f"request body is larger than {limit} bytes", kind="request_too_large")
    raw = await request.body()
    if len(raw) > limit:
        raise PortwayError(f"request body is larger than {limit} bytes", kind="request_too_large")
    if not raw:
        raise ValidationFailed("the request body is empty; send a JSON object")
    try:
        return serialization.loads(raw)
    except serialization.JSONDecodeError as exc:
        raise ValidationFailed(f"the request body is not valid JSON: {exc}") from None


def context_for(request: Request, endpoint: str, body: dict[str, Any], key: str | None,
                client_format: str = "openai") -> RequestContext:
    request_id = request.headers.get("x-request-id") or new_request_id()
    return RequestContext(request_id=request_id, endpoint=endpoint, body=body, api_key=key,
                          client_format=client_format, gateway=request.app.state.gateway,
                          headers={k: v for k, v in request.headers.items() if k not in SECRET_HEADERS})


def route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.target is not None:
        headers["x-portway-provider"] = ctx.target.provider.name
        headers["x-portway-model"] = ctx.target.model
    elif ctx.cached:
        headers["x-portway-provider"] = "cache"
        headers["x-portway-model"] = ctx.model
    return headers


def client_gone(ctx: RequestContext | None) -> Response:
    if ctx is not None:
        ctx.status = 499  # nginx's "client closed request": nobody receives this response
    return Response(status_code=499)


def failed(ctx: RequestContext | None, error: Exception, request: Request, client_format: str) -> Response:
    """The error response for anything raised while serving a request: a
    PortwayError as it is, anything else as a 500 with no detail."""
    request_id = ctx.request_id if ctx else request.headers.get("x-request-id") or new_request_id()
    if not isinstance(error, PortwayError):
        log.exception("request %s failed", request_id, exc_info=error)
        if ctx is not None:
            ctx.error, ctx.status = error, 500
        error = PortwayError(f"internal error (request id {request_id})", kind="server_error")
    elif ctx is not None:
        ctx.error, ctx.status = error, error.status
    response = error_response(error, client_format, request_id)
    if ctx is not None and ctx.target is not None:  # which upstream failed, as on a success
        response.headers.update(route_headers(ctx))
    return response


Run = Callable[[Request, "Gateway", RequestContext], Awaitable[Response]]


async def handle(
    request: Request,
    endpoint: str,
    schema: type[BaseModel],
    run: Run,
    *,
    client_format: str = "openai",
    translate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """What every API endpoint does around its own work: check the key,
    read and validate the body, build the context, render any failure in
    the client's API shape, and hand the finished request to the
    ``request_finished`` hooks (a stream does that when it ends)."""
    gateway = request.app.state.gateway
    ctx: RequestContext | None = None
    try:
        key = presented_key(request)
        check_key(gateway.master_key, key)
        body = await read_json(request, gateway.config.server.max_body_bytes)
        validate(schema, body)
        ctx = context_for(request, endpoint, translate(body) if translate else body, key, client_format)
        result = await run(request, gateway, ctx)
        if isinstance(result, EventStreamResponse):
            return result
    except ClientDisconnected:
        result = client_gone(ctx)
    except Exception as error:  # never a traceback to the client
        result = failed(ctx, error, request, client_format)
    if ctx is not None:
        gateway.finish(ctx)
    return result


async def relay_stream(
    gateway: Gateway,
    ctx: RequestContext,
    body: AsyncIterator[bytes],
    error_event: Callable[[PortwayError], bytes],
) -> AsyncIterator[bytes]:
    """The bytes of a stream that has started: a failure now can only end
    it with an error event in the client's format."""
    try:
        async with aclosing(body):  # closing it closes the chain down to the upstream request
            async for part in body:
                yield part
    except PortwayError as error:
        ctx.error, ctx.status = error, error.status
        yield error_event(error)
    except asyncio.CancelledError:
        ctx.status = 499  # the client went away; closing the iterator closed the upstream request
        raise
    except Exception as error:
        log.exception("stream %s failed", ctx.request_id)
        ctx.error, ctx.status = error, 500
        yield error_event(PortwayError("internal error while streaming", kind="server_error"))
    finally:
        gateway.finish(ctx)

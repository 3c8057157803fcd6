"""What every API endpoint shares: checking the key, reading the body,
building the context, and rendering errors in the client's API shape.

Nothing here may raise on the way out: whatever the client sent (a model
name with a snowman in it, a request id with a newline), the answer is a
well-formed HTTP response and ``request_finished`` fires exactly once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import os
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from portway import serialization, tracing
from portway.catalog import format_cost
from portway.context import RequestContext
from portway.errors import PortwayError, ValidationFailed, is_error_status
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

#: Request bodies nested deeper than this are refused at parse time: the
#: gateway re-serialises what it forwards, and a JSON encoder has a depth
#: limit of its own (orjson's is 255), so a deeper body would fail later,
#: after plugins ran and perhaps after an upstream was paid.
MAX_JSON_DEPTH = 100
TOO_DEEP = f"the request body nests deeper than {MAX_JSON_DEPTH} levels"


# Printable ASCII but '%': what may stand in a header value as it is.
_HEADER_SAFE = "".join(c for c in string.printable if c.isprintable() and c != "%")
_REQUEST_ID_CHARS = frozenset(string.ascii_letters + string.digits + "-_.:")


class _RequestIds:
    """``req_`` and 32 hex digits: 80 random bits drawn once per process, then
    a counter.  Unique across workers and machines like a UUID, at a tenth of
    uuid4's cost (no system call per request)."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._count = itertools.count()

    def __call__(self) -> str:
        if self._pid != os.getpid():  # a forked child must not repeat its parent's ids
            self._pid, self._prefix, self._count = os.getpid(), "req_" + os.urandom(10).hex(), itertools.count()
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFFFFFF:012x}"


new_request_id = _RequestIds()


def headers_of(conn: HTTPConnection) -> dict[str, str]:
    """The request's headers as a plain dict, built once per request and kept
    in its scope.  A repeated name gives its first value, as Starlette's
    ``headers.get`` does (which scans and decodes every header per lookup;
    the request path looks up about ten)."""
    scope = conn.scope
    headers: dict[str, str] | None = scope.get("portway.headers")
    if headers is None:
        # Reversed, so the first of a repeated name is written last and stays.
        headers = scope["portway.headers"] = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}
    return headers


def request_id_of(conn: HTTPConnection) -> str:
    """The client's ``x-request-id`` when it is a sane token (at most 128
    letters, digits and ``-_.:``), else a fresh one."""
    given = headers_of(conn).get("x-request-id")
    if given and len(given) <= 128 and _REQUEST_ID_CHARS.issuperset(given):
        return given
    return new_request_id()


def header_value(text: str, limit: int = 256) -> str:
    """``text`` made safe for a response header whatever the client put in
    it: printable ASCII stays as it is, anything else is percent-encoded."""
    if not (text.isascii() and text.isprintable()) or "%" in text:
        text = quote(text, safe=_HEADER_SAFE)
    return text[:limit]


def valid_status(status: Any) -> int:
    """An error's status as sent (``PortwayError`` already maps made-up
    statuses to 502; a plugin may have set one since)."""
    return status if type(status) is int and is_error_status(status) else 502


def error_response(error: PortwayError, client_format: str, request_id: str) -> JSONResponse:
    if client_format == "anthropic":
        body = error.anthropic_body()
        body["request_id"] = request_id
        # The anthropic SDK reads ``request-id``; everyone else ``x-request-id``.
        headers = {"x-request-id": request_id, "request-id": request_id}
    else:
        body = error.openai_body()
        headers = {"x-request-id": request_id}
    if error.retry_after:
        headers["retry-after"] = header_value(str(error.retry_after), 64)
    if error.provider:
        headers["x-portway-provider"] = header_value(error.provider)
    if error.kind == "request_too_large":
        headers["connection"] = "close"  # the rest of an oversized body is not worth reading
    return JSONResponse(body, status_code=valid_status(error.status), headers=headers)


# -- access ----------------------------------------------------------------------


def presented_key(conn: HTTPConnection) -> str | None:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI SDK, and the
    Anthropic SDK since 2.14) or ``x-api-key`` / ``api-key`` (older
    Anthropic clients, Azure-style clients).  An empty or blank value
    counts as no key."""
    headers = headers_of(conn)
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return value
    for name in ("x-api-key", "api-key"):
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    return None


def key_id(key: str) -> str:
    """A stable, one-way id for a client key: the same in every worker and on
    every machine, useless for getting the key back."""
    return "key_" + hashlib.blake2b(key.encode("latin-1"), digest_size=8, person=b"portway-key-id").hexdigest()


def check_key(master_key: bytes | None, presented: str | None) -> None:
    """Compare in constant time, byte for byte: Starlette decodes header
    values as latin-1, so ``encode("latin-1")`` gives back exactly the bytes
    the client sent, and the master key is compared as its UTF-8 bytes."""
    if master_key is None:
        return
    if presented is None:
        raise PortwayError("missing API key: send 'Authorization: Bearer <key>'", kind="authentication",
                           code="missing_api_key")
    if not hmac.compare_digest(presented.encode("latin-1"), master_key):
        raise PortwayError("invalid API key", kind="authentication", code="invalid_api_key")


def authenticate(gateway: Gateway, conn: HTTPConnection) -> str | None:
    """Check the master key (when one is set); return the key id of what the
    client presented, or ``None``."""
    presented = presented_key(conn)
    check_key(gateway.master_key_bytes, presented)
    return key_id(presented) if presented is not None else None


def is_authenticated(gateway: Gateway, conn: HTTPConnection) -> bool:
    try:
        check_key(gateway.master_key_bytes, presented_key(conn))
    except PortwayError:
        return False
    return True


# -- the body ----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read as it arrives and refused the moment it passes
    ``limit`` bytes: a chunked upload has no Content-Length to check first."""
    length = headers_of(request).get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PortwayError(f"request body is larger than {limit} bytes", kind="request_too_large",
                           code="request_too_large")
    # From the ASGI messages themselves (Starlette's request.stream() is an
    # async generator: a layer more per request for nothing).
    receive = request.receive
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            part = message.get("body", b"")
            if part:
                size += len(part)
                if size > limit:
                    raise PortwayError(f"request body is larger than {limit} bytes", kind="request_too_large",
                                       code="request_too_large")
                parts.append(part)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            raise ClientDisconnected()
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def read_json(request: Request, limit: int) -> tuple[Any, int]:
    """The request body parsed, and its size in bytes."""
    raw = await read_body(request, limit)
    if not raw:
        raise ValidationFailed("the request body is empty; send a JSON object")
    try:
        value = serialization.loads(raw)
    except serialization.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # deeper than the parser itself goes (1024)
            raise ValidationFailed(TOO_DEEP) from None
        raise ValidationFailed(f"the request body is not valid JSON: {exc}") from None
    if isinstance(value, (dict, list)) and serialization.nests_deeper_than(value, MAX_JSON_DEPTH, len(raw)):
        raise ValidationFailed(TOO_DEEP)
    return value, len(raw)


# -- the context and the answer ------------------------------------------------------


def context_for(request: Request, request_id: str, endpoint: str, body: dict[str, Any] | None, key: str | None,
                client_format: str = "openai", native: Any = None, size: int | None = None) -> RequestContext:
    headers = headers_of(request)
    visible = headers.copy()
    for name in SECRET_HEADERS:
        visible.pop(name, None)
    ctx = RequestContext(request_id=request_id, endpoint=endpoint, canonical=body, key_id=key,
                         client_format=client_format, gateway=request.app.state.gateway, native=native,
                         body_bytes=size, headers=visible)
    tags = headers.get("x-portway-metadata")
    if tags is not None:
        ctx.tags = parse_tags(tags)
    route = headers.get("x-portway-config")
    if route is not None:
        ctx.route = ctx.gateway.header_route(route)
    return ctx


#: Bounds on ``x-portway-metadata``: it is stored with every logged request.
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 16, 64, 256


def parse_tags(header: str) -> dict[str, str]:
    """The ``x-portway-metadata`` header: a JSON object of strings (at most
    16 keys of 64 characters, values of 256), or a 400 saying what is wrong."""
    def bad(why: str) -> PortwayError:
        return PortwayError(f"x-portway-metadata: {why}", kind="bad_request", code="invalid_metadata")

    try:
        tags = serialization.loads(header)
    except ValueError:
        raise bad("not valid JSON; send an object of strings, e.g. {\"team\": \"search\"}") from None
    if not isinstance(tags, dict):
        raise bad("must be a JSON object of strings")
    if len(tags) > MAX_TAGS:
        raise bad(f"{len(tags)} keys; at most {MAX_TAGS}")
    for name, value in tags.items():
        if not name or len(name) > MAX_TAG_KEY:
            raise bad(f"a key must have 1 to {MAX_TAG_KEY} characters")
        if not isinstance(value, str):
            raise bad(f"the value of {name!r} is not a string")
        if len(value) > MAX_TAG_VALUE:
            raise bad(f"the value of {name!r} is longer than {MAX_TAG_VALUE} characters")
    return tags


def route_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {"x-request-id": ctx.request_id}
    if ctx.client_format == "anthropic":
        headers["request-id"] = ctx.request_id
    if ctx.target is not None:
        headers["x-portway-provider"] = header_value(ctx.target.provider.name)
        headers["x-portway-model"] = header_value(ctx.target.model)
    elif ctx.cached:
        headers["x-portway-provider"] = "cache"
        headers["x-portway-model"] = header_value(ctx.model)
    if ctx.attempts:
        headers["x-portway-attempts"] = str(ctx.attempts)
    if ctx.failures and ctx.target is not None and any(name != ctx.target.name for name, _ in ctx.failures):
        # A fallback happened: which targets failed, and why, in order.
        headers["x-portway-fallback"] = header_value("; ".join(f"{name}: {why}" for name, why in ctx.failures), 1024)
    if ctx.cost is not None:
        headers["x-portway-cost"] = format_cost(ctx.cost)
    if ctx.response_headers:
        for name, value in ctx.response_headers.items():
            headers[name] = header_value(value, 1024)
    return headers


def client_gone(ctx: RequestContext | None) -> Response:
    if ctx is not None:
        ctx.status = 499  # nginx's "client closed request": nobody receives this response
    return Response(status_code=499)


def client_error(ctx: RequestContext | None, error: Exception, request_id: str) -> PortwayError:
    """What the client is told of anything raised while serving a request:
    a PortwayError as it is, anything else (logged) as a 500 with no detail.
    The context records what happened."""
    if not isinstance(error, PortwayError):
        log.error("request %s failed", request_id, exc_info=error)
        if ctx is not None:
            ctx.error, ctx.status = error, 500
        return PortwayError(f"internal error (request id {request_id})", kind="server_error")
    if ctx is not None:
        ctx.error, ctx.status = error, valid_status(error.status)
    return error


def failed(ctx: RequestContext | None, error: Exception, request_id: str, client_format: str) -> Response:
    """The error response for anything raised while serving a request (see :func:`client_error`)."""
    response = error_response(client_error(ctx, error, request_id), client_format, request_id)
    if ctx is not None and (ctx.target is not None or ctx.response_headers):  # what happened, as on a success
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
    translate: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, Any]] | None = None,
) -> Response:
    """What every API endpoint does around its own work: check the key,
    read and validate the body, build the context, render any failure in
    the client's API shape, and hand the finished request to the
    ``request_finished`` hooks (a stream does that when it ends).
    ``translate`` turns a body in another format into (the canonical body,
    or ``None`` to make it when first read; the
    :class:`~portway.native.NativeRequest` for a pass-through)."""
    gateway: Gateway = request.app.state.gateway
    request_id = request_id_of(request)
    ctx: RequestContext | None = None
    result: Response | None = None
    try:
        key = authenticate(gateway, request)
        body, size = await read_json(request, gateway.config.server.max_body_bytes)
        validate(schema, body)
        canonical, native = translate(body) if translate else (body, None)
        ctx = context_for(request, request_id, endpoint, canonical, key, client_format, native, size)
        gateway.in_flight += 1  # until _finished
        tracing.start(ctx, gateway.tracing)
        result = await run(request, gateway, ctx)
        if isinstance(result, EventStreamResponse):
            return result  # it finishes the request when the stream is over
    except ClientDisconnected:
        result = client_gone(ctx)
    except Exception as error:  # never a traceback to the client
        result = _failure_response(ctx, error, request_id, client_format)
    finally:
        if ctx is not None and not isinstance(result, EventStreamResponse):
            _finished(gateway, ctx)
    return result


def _finished(gateway: Gateway, ctx: RequestContext) -> None:
    """A request :func:`handle` started is over (for a stream: once its
    last byte is sent, or its response could not even start); once only.
    An answer that is not a stream is finished just before it is sent:
    what a plugin records of it is there when the client has the answer."""
    if ctx.finished_at is not None:
        return
    gateway.in_flight -= 1
    gateway.finish(ctx)


def stream_response(gateway: Gateway, ctx: RequestContext, body: AsyncIterator[bytes]) -> EventStreamResponse:
    """The response of a stream that has started (``body``: from
    :func:`relay_stream`).  It finishes the request once it is over, after
    its last byte (the ``request_finished`` work never delays the end of
    the stream); a client that left before the body ever ran makes it a 499."""
    def closed(ran: bool) -> None:
        if not ran and ctx.finished_at is None:
            ctx.status = 499
        _finished(gateway, ctx)

    return EventStreamResponse(body, headers=route_headers(ctx), on_close=closed)


def _failure_response(ctx: RequestContext | None, error: Exception, request_id: str, client_format: str) -> Response:
    try:
        return failed(ctx, error, request_id, client_format)
    except Exception:  # the last resort must not raise either
        log.exception("request %s: could not render its error", request_id)
        if ctx is not None:
            ctx.status = 500
        return JSONResponse(PortwayError("internal error", kind="server_error").openai_body(), status_code=500,
                            headers={"x-request-id": request_id})


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
        ctx.error, ctx.status = error, valid_status(error.status)
        gateway.log_stream_failure(ctx, error)
        yield error_event(error)
    except asyncio.CancelledError:
        ctx.status = 499  # the client went away; closing the iterator closed the upstream request
        raise
    except Exception as error:
        log.error("stream %s failed", ctx.request_id, exc_info=error)
        ctx.error, ctx.status = error, 500
        yield error_event(PortwayError("internal error while streaming", kind="server_error"))

"""The ASGI application factory."""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from portway import config as config_module
from portway.endpoints import anthropic, openai
from portway.endpoints.common import authenticate, error_response, request_id_of
from portway.errors import PortwayError
from portway.gateway import Gateway


def create_app(gateway: Gateway) -> Starlette:
    routes = [
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", openai.embeddings, methods=["POST"]),
        Route("/v1/models", openai.models, methods=["GET"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/health", openai.health, methods=["GET"]),
    ]

    def register(path: str, endpoint: Any, methods: list[str] | None = None, *, public: bool = False) -> None:
        # Behind the master key unless the plugin says otherwise, like every /v1 route.
        routes.append(Route(path, endpoint if public else Guarded(gateway, endpoint), methods=methods or ["GET"]))

    gateway.hooks.each_sync("register_routes", register=register)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.startup()
        # Everything allocated so far lives as long as the process: move it
        # out of the collector's way so full collections stay short.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await gateway.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _http_error, 405: _http_error})
    app.state.gateway = gateway
    return app


class Guarded:
    """A plugin's endpoint behind the master key: a missing or wrong key gets
    the same 401 as the API routes, before the endpoint runs."""

    def __init__(self, gateway: Gateway, endpoint: Any) -> None:
        self.gateway = gateway
        is_function = inspect.isfunction(endpoint) or inspect.ismethod(endpoint)
        self.app: ASGIApp = request_response(endpoint) if is_function else endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = HTTPConnection(scope)
        try:
            authenticate(self.gateway, conn)
        except PortwayError as error:
            await error_response(error, "openai", request_id_of(conn))(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in the API's error shape too."""
    status = getattr(exc, "status_code", 404)
    if status == 405:
        error = PortwayError(f"method {request.method} is not allowed on {request.url.path}", kind="bad_request",
                             status=405, code="method_not_allowed")
    else:
        error = PortwayError(f"no such endpoint: {request.method} {request.url.path}", kind="not_found",
                             code="unknown_url")
    fmt = "anthropic" if request.url.path.startswith("/v1/messages") else "openai"
    return error_response(error, fmt, request_id_of(request))


def gateway_from_config_path(path: str | None) -> Gateway:
    if path:
        return Gateway(config_module.load(path))
    return Gateway(config_module.parse({}, "<embedded defaults>"), auto_providers=True)


def app_from_env() -> Starlette:
    """Factory used by ``portway serve`` workers (``--workers N`` starts N
    processes, each building its own gateway from the same config file)."""
    return create_app(gateway_from_config_path(os.environ.get("PORTWAY_CONFIG") or None))

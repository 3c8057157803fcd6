"""The ASGI application factory."""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from portway import config as config_module
from portway import configcheck, logs
from portway.endpoints import anthropic, openai, rerank, responses
from portway.endpoints.common import JSONResponse, authenticate, error_response, request_id_of
from portway.errors import PortwayError
from portway.gateway import Gateway
from portway.serving import GatewayProtocol

#: The API's POST endpoints, served by :class:`DirectRoutes` ahead of Starlette's router.
API_ENDPOINTS = {
    "/v1/chat/completions": openai.chat_completions,
    "/v1/embeddings": openai.embeddings,
    "/v1/rerank": rerank.rerank,
    "/v2/rerank": rerank.rerank,
    "/v1/messages": anthropic.messages,
    "/v1/messages/count_tokens": anthropic.count_tokens,
    "/v1/responses": responses.create,
}


#: See the lifespan in :func:`create_app`.
YOUNG_GC_THRESHOLD = 20_000


def create_app(gateway: Gateway) -> DirectRoutes:
    routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in API_ENDPOINTS.items()]
    routes += [
        Route("/v1/models", openai.models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", openai.model, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.response, methods=["GET", "DELETE"]),
        Route("/v1/responses/{response_id}/input_items", responses.input_items_list, methods=["GET"]),
        Route("/health", openai.health, methods=["GET"]),
        Route("/", root, methods=["GET", "HEAD"]),
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
        # A young-generation collection runs whenever the objects allocated and
        # not yet freed pass the first threshold (700 by default).  A serving
        # gateway holds thousands of young objects at any moment (the requests
        # in flight, the records queued for the log), none of them garbage, so
        # at 700 the collector ran every few requests and found nothing: 2-3 %
        # of all CPU per request.  The requests' own objects are freed by
        # reference counting; what a cycle leaves is still collected, later.
        gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield
        finally:
            await gateway.shutdown()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: _http_error, 405: _http_error})
    app.state.gateway = gateway
    return DirectRoutes(app, API_ENDPOINTS)


class DirectRoutes:
    """The app as served: a ``POST`` to one of the API's own paths goes
    straight to its endpoint; everything else (other methods, plugin routes,
    unknown paths, the lifespan) goes through Starlette's router.

    The API endpoints need none of what the router and its middleware add:
    they match by exact path, take no path parameters, and never raise
    (:func:`portway.endpoints.common.handle` renders every failure in the
    client's API shape).  Skipping the route matching and the two exception
    middlewares saves about a tenth of a small request's CPU time
    (docs/performance.md).  The same paths stay in the router, which answers
    them for other methods (405 in the API's shape) and lists them."""

    def __init__(self, app: Starlette, endpoints: dict[str, Callable[[Request], Awaitable[Response]]]) -> None:
        self.app = app
        self.endpoints = endpoints

    def __getattr__(self, name: str) -> Any:  # state, router, routes: the Starlette app's
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self.app  # what Starlette sets: Request.app
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def root(request: Request) -> Response:
    """``GET /`` and ``HEAD /``: clients probe the base URL (Claude Code
    sends ``HEAD /``) before they call the API; a tiny public answer."""
    return JSONResponse({"name": "portway", "status": "ok"})


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


def gateway_for(config: config_module.Config) -> Gateway:
    """The gateway for an already checked config; the embedded defaults add
    the providers whose key variable is set."""
    return Gateway(config, auto_providers=config.source == config_module.EMBEDDED)


def gateway_from_config_path(path: str | None, *, secrets: bool = True,
                             server: dict[str, Any] | None = None) -> Gateway:
    """The gateway for the config file at ``path`` (None: the embedded
    defaults), after the complete check (:class:`ConfigError` lists every
    problem).  ``secrets=False``: unset variables in secret keys are
    tolerated, for commands that never call a provider.  ``server``:
    overrides of ``server.*`` from command-line flags."""
    return gateway_for(configcheck.checked_config(path, secrets=secrets, server=server))


def served_app(gateway: Gateway) -> DirectRoutes:
    """The app as ``portway serve`` runs it: log records are queued while it
    serves (see :mod:`portway.logs`) and written directly once it has shut
    down, so the last lines are not lost when uvicorn ends the process."""
    app = create_app(gateway)
    # One gateway per serving process: its connections take this limit (see portway.serving).
    GatewayProtocol.max_header_bytes = gateway.config.server.max_header_bytes
    serving = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with serving(app):
                yield
        finally:
            logs.write_directly()

    app.router.lifespan_context = lifespan
    return app


#: How ``portway serve --workers N`` hands its resolved choices to each
#: worker process (JSON: ``config`` path or null for the embedded defaults,
#: ``server`` overrides, ``log_level``), so every worker serves exactly
#: what the main process checked and announced.
SERVE_SETTINGS_ENV = "PORTWAY_SERVE_SETTINGS"


def app_from_env() -> DirectRoutes:
    """Factory used by ``portway serve`` workers (``--workers N`` starts N
    processes, each building its own gateway from the same config).

    Outside ``portway serve`` (``uvicorn --factory portway.app:app_from_env``)
    the config is found as ``portway serve`` finds it: ``$PORTWAY_CONFIG``,
    then ``./portway.yaml``, else the embedded defaults; logging is then left
    to the host."""
    settings = os.environ.get(SERVE_SETTINGS_ENV)
    if settings is None:
        return create_app(gateway_from_config_path(config_module.discover(None).path))
    options = json.loads(settings)
    config = configcheck.checked_config(options["config"], server=options["server"])
    logs.configure(config.server.log_format, options["log_level"])
    return served_app(gateway_for(config))

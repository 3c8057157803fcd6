"""Portway's routing layer, as a plugin (issue 12; the core's install pulls it in).

So far:

- circuit breaking per target (:mod:`portway_routing.breaker`), with its
  state at ``GET /admin/targets``;
- ``POST /v1/compare`` (:mod:`portway_routing.compare`): one chat request
  fanned out to several models at once, each answer or error with its
  latency, tokens and cost.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import hookimpl
from portway.endpoints.common import JSONResponse
from portway_routing import breaker
from portway_routing.compare import compare

PORTWAY_PLUGIN_KIND = "router"


@hookimpl
def register_routes(register: Any) -> None:
    # Behind the master key, like every /v1 route.
    register("/v1/compare", compare, methods=["POST"])
    register("/admin/targets", targets, methods=["GET"])


@hookimpl(tryfirst=True)
def select_provider(ctx: Any, candidates: list[Any]) -> None:
    breaker.select(ctx, candidates)  # filters the candidates; the router after it chooses


@hookimpl(tryfirst=True)
def on_error(ctx: Any, error: Any, candidates: list[Any]) -> Any:
    return breaker.failed(ctx, error, candidates)


@hookimpl
def request_finished(ctx: Any) -> None:
    breaker.finished(ctx)


async def targets(request: Request) -> Response:
    """``GET /admin/targets``: every target's breaker (the targets of the
    configured aliases, and any other that was tried)."""
    gateway = request.app.state.gateway
    breakers = breaker.breakers_of(gateway)
    if breakers is None:
        return JSONResponse({"breaker": "disabled", "targets": []})
    for route in gateway.aliases.values():
        for target in route.targets:
            breakers.get(target.name)
    return JSONResponse({"breaker": "enabled", "targets": breakers.view(time.monotonic())})

"""{{ cookiecutter.description }}

A bare plugin to build on.  As generated it:

- tags every request in ``pre_request``: ``ctx.metadata["{{ cookiecutter.name }}"]``
  holds when the gateway received it and the client's user agent, for the
  plugins that run later (routing, observability) to read;
- serves ``GET /{{ cookiecutter.name }}/hello`` next to the gateway's own API.

Any other hook can be added the same way: a module-level function named
after the hook, decorated with ``@hookimpl``.  The hooks and their
contracts: ``portway.hookspecs`` (and docs/hooks.md in the Portway repo).

For settings, declare a config section with ``register_config`` and read it
in request hooks as ``ctx.gateway.plugin_config[NAME]``; keep anything else
that lives longer than a request with its gateway too (see the cache and
observability kinds), not in module globals, because one process may run
several gateways.
"""

from __future__ import annotations

import time
from typing import Any

from portway import hookimpl
from starlette.requests import Request
from starlette.responses import JSONResponse

PORTWAY_PLUGIN_KIND = "hook"
NAME = "{{ cookiecutter.name }}"


@hookimpl
def pre_request(ctx: Any) -> None:
    """Runs before routing, for every request.  Add what later hooks need
    to ``ctx.metadata`` (keyed by the plugin name), change ``ctx.body`` in
    place, or raise a ``PortwayError`` to refuse the request.  Returning
    ``None`` lets the request continue; returning a response answers it."""
    ctx.metadata[NAME] = {
        "received_at": time.time(),
        "user_agent": ctx.headers.get("user-agent"),
    }


async def hello(request: Request) -> JSONResponse:
    """A Starlette endpoint; the running gateway is ``request.app.state.gateway``."""
    gateway = request.app.state.gateway
    return JSONResponse({"plugin": NAME, "hello": "world", "providers": sorted(gateway.providers)})


@hookimpl
def register_routes(register: Any) -> None:
    register(f"/{NAME}/hello", hello, methods=["GET"])

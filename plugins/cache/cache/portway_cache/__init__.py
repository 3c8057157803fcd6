"""Portway's response cache (issue 14; the core's install pulls it in).

Owns the ``cache:`` config section and an alias's ``cache:`` key; with no
``cache:`` section it does nothing.  Looks answers up in ``pre_request``
(exact key, then, in semantic mode, the most similar prompt), stores
successful complete answers in ``post_response``, and keeps them in a
backend registered by another plugin through ``register_cache_backends``
(``portway-cache-memory``, the default; ``portway-cache-sqlite``;
``portway-cache-redis``).  See docs/caching.md.
"""

from __future__ import annotations

import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portway import hookimpl
from portway.config import ConfigError
from portway.endpoints.common import JSONResponse, error_response, request_id_of
from portway.errors import PortwayError
from portway_cache.cache import CACHED_ENDPOINTS, Cache
from portway_cache.config import AliasCache, CacheConfig

PORTWAY_PLUGIN_KIND = "cache"
SECTION = "cache"
#: The name the request-path hooks are registered under (``plugins.order`` may use it).
LOOKUP = "cache-lookup"

_caches: weakref.WeakKeyDictionary[Any, Cache] = weakref.WeakKeyDictionary()


def cache_of(gateway: Any) -> Cache | None:
    """The gateway's cache; None when its config has no ``cache:`` section."""
    return _caches.get(gateway)


@hookimpl
def register_config(register: Any) -> None:
    register(SECTION, CacheConfig)


@hookimpl
def register_alias_keys(register: Any) -> None:
    register(SECTION, AliasCache)


@hookimpl
def register_routes(register: Any) -> None:
    register("/admin/cache", admin_cache, methods=["GET", "DELETE"])


@hookimpl
def register_request_hooks(gateway: Any, register: Any) -> None:
    """With a ``cache:`` section: the cache, checked, and its request hooks.
    Without one nothing is registered, so an installed but unconfigured
    cache costs requests nothing."""
    if SECTION not in gateway.config.extra_sections():
        return
    backends: dict[str, Any] = {}
    gateway.hooks.each_sync("register_cache_backends", contain=False,
                            register=lambda name, cls: backends.__setitem__(name, cls))
    cache = Cache(gateway, gateway.plugin_config[SECTION], backends)
    config = cache.config
    if config.semantic is not None:
        cache.check_embedding_model(config.semantic.embedding_model, "cache.semantic.embedding_model")
    for alias, option in _alias_options(gateway):
        if option.mode == "semantic" and option.embedding_model is None and config.semantic is None:
            raise _config_error(gateway, f"models.{alias}.cache: mode 'semantic' needs an embedding_model "
                                         f"(here or in cache.semantic)")
        cache.check_embedding_model(option.embedding_model, f"models.{alias}.cache.embedding_model")
    _caches[gateway] = cache
    register(LOOKUP, CacheHooks(cache))


@hookimpl
async def startup(gateway: Any) -> None:
    cache = _caches.get(gateway)
    if cache is not None:
        await cache.backend.start()  # a backend that cannot open (a wrong Redis URL) stops the start-up


def _alias_options(gateway: Any) -> list[tuple[str, AliasCache]]:
    found = []
    for alias, route in gateway.aliases.items():
        option = route.options.get(SECTION)
        if isinstance(option, AliasCache):
            found.append((alias, option))
    return found


def _config_error(gateway: Any, message: str) -> Exception:
    return ConfigError(f"{gateway.config.source}: {message}")


@hookimpl
async def shutdown(gateway: Any) -> None:
    cache = _caches.pop(gateway, None)
    if cache is not None:
        await cache.backend.close()


class CacheHooks:
    """The request path of one gateway's cache (registered at start-up)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    # After every other pre_request (a guardrail's block, a template's rewrite) and
    # post_response (a redaction): the key is of what goes upstream, the entry of
    # what the client got.
    @hookimpl(trylast=True)
    async def pre_request(self, ctx: Any) -> dict[str, Any] | None:
        if ctx.endpoint not in CACHED_ENDPOINTS:
            return None
        return await self.cache.lookup(ctx)

    @hookimpl(trylast=True)
    async def post_response(self, ctx: Any, response: dict[str, Any]) -> None:
        if "cache" in ctx.metadata:
            await self.cache.store(ctx, response)

    @hookimpl
    def request_finished(self, ctx: Any) -> None:
        self.cache.finished(ctx)


async def admin_cache(request: Request) -> Response:
    """``GET /admin/cache``: the backend and this process's counts.
    ``DELETE /admin/cache``: every entry; ``?namespace=<ns>``: one
    namespace's (a key id, ``shared`` or ``anonymous``); ``?key=<key>``: one
    entry (the ``x-portway-cache-key`` of an answer)."""
    cache = _caches.get(request.app.state.gateway)
    if cache is None:
        error = PortwayError("caching is off: the config has no 'cache:' section", kind="not_found",
                             code="cache_disabled")
        return error_response(error, "openai", request_id_of(request))
    if request.method == "GET":
        return JSONResponse({"backend": cache.config.backend, "mode": cache.config.mode,
                             "in_flight": len(cache.flights), **cache.stats.view()})
    key = request.query_params.get("key")
    namespace = request.query_params.get("namespace")
    if key is not None and namespace is not None:
        error = PortwayError("give 'key' or 'namespace', not both", kind="bad_request", code="invalid_request")
        return error_response(error, "openai", request_id_of(request))
    if key is not None:
        return JSONResponse({"deleted": 1 if await cache.backend.delete(key) else 0})
    if namespace is not None and (not namespace or ":" in namespace):
        error = PortwayError("'namespace' is a key id, 'shared' or 'anonymous'", kind="bad_request",
                             code="invalid_request", param="namespace")
        return error_response(error, "openai", request_id_of(request))
    return JSONResponse({"deleted": await cache.backend.clear(namespace)})

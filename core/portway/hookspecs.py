"""The hooks a Portway plugin can implement.

Every capability of the gateway (each provider, guardrail, cache, sink) is a
plugin implementing some of these.  Hooks on the request path may be
``async def``; the host awaits them (see :mod:`portway.hooks` for how, and
for first-result semantics).  ``docs/hooks.md`` is checked against this
module by a test, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("portway")
hookimpl = HookimplMarker("portway")


# -- registration: called once at start-up ------------------------------------


@hookspec
def register_providers(register: Any) -> None:
    """Register provider types.

    Call ``register(ProviderClass)`` once per provider type this plugin
    adds; ``ProviderClass.type`` is the name used in config
    (``providers: {x: {type: <name>}}``).  Called once at start-up, never
    per request.  Return value is ignored.
    """


@hookspec
def register_routes(register: Any) -> None:
    """Add HTTP endpoints owned by the plugin.

    Call ``register(path, endpoint, methods=["GET"], public=False)`` where
    ``endpoint`` is a Starlette endpoint ``async def endpoint(request) ->
    Response`` (or an ASGI app).  The route is behind the master key, like
    the API's own routes, unless ``public=True``.  The endpoint can reach
    the running gateway as ``request.app.state.gateway``.  Called once when
    the app is built.
    """


@hookspec
def register_commands(register: Any) -> None:
    """Add ``portway`` CLI sub-commands.

    Call ``register(name, handler, help="...", arguments=configure)``:
    ``configure(parser)`` adds argparse arguments, ``handler(args) -> int``
    runs the command and returns the exit code.
    """


@hookspec
def register_config(register: Any) -> None:
    """Declare the plugin's own config section.

    Call ``register(section, Model)``: the top-level YAML key ``section`` is
    validated by the pydantic model ``Model`` and the result is available as
    ``gateway.plugin_config[section]``.
    """


@hookspec
def register_alias_keys(register: Any) -> None:
    """Declare keys the plugin reads on model aliases.

    Call ``register(key, kind)``: every ``models.<alias>.<key>`` in the
    config is validated by ``kind`` (a pydantic model, or any type pydantic
    validates, e.g. ``Literal["a", "b"]`` or ``bool | Model``); a key no
    plugin declares is a config error naming the file and the key.  On the
    request path ``ctx.alias_option(key)`` gives the validated value for
    the request's alias (None when it does not set the key).  A key is
    declared by one plugin; routing (``strategy``), caching (``cache``) and
    guardrails (``guardrails``) each declare their own.
    """


@hookspec
def register_cache_backends(register: Any) -> None:
    """Add cache backends (see docs/caching.md).

    Call ``register(name, BackendClass)``: ``cache: {backend: <name>}``
    selects it.  ``BackendClass.config_model`` (a pydantic model) validates
    the ``cache:`` section's keys the cache framework does not own (a path,
    a URL, a size bound); ``BackendClass(settings)`` makes the backend at
    start-up, an object with the methods of
    :class:`portway.caching.CacheBackend`.
    """


@hookspec
def register_guardrails(register: Any) -> None:
    """Register guardrail check types.

    Call ``register(CheckClass)`` once per type this plugin adds: a
    :class:`portway.guardrails.Check` subclass whose ``type`` is the name
    used in config (``guardrails: {checks: {x: {type: <name>}}}``).  Asked
    by the guardrail framework plugin once at start-up, never per request.
    """


@hookspec
def register_request_hooks(gateway: Any, register: Any) -> None:
    """Add request-path hooks that only some configs need.

    Called once at start-up, after every config section is validated
    (``gateway.plugin_config``) and before the request path is set up.
    Call ``register(name, obj)`` with an object whose ``@hookimpl``
    functions (``pre_request``, ``post_chunk``, ...) then take part like a
    plugin's own.  A plugin that is installed but not configured registers
    nothing and so costs nothing per request (the guardrail framework with
    no checks configured).
    """


# -- lifecycle -----------------------------------------------------------------


@hookspec
def catalog_entry(provider: Any, model: str) -> Any:
    """What this plugin knows of ``model`` served by ``provider`` (a
    :class:`portway.providers.Provider` instance): a
    :class:`portway.catalog.ModelInfo` (context window, maximum output,
    prices, capabilities; any field may be None), or None.

    Synchronous.  Called at most once per provider instance and model (the
    catalog keeps the answer), never for each request.  Every
    implementation is asked; the answers are merged field by field, the
    first in hook order that knows a field winning, under the config's own
    ``catalog:`` entries.  The built-in ``portway.builtins.catalog``
    answers last, from the ``genai-prices`` package (see docs/catalog.md).
    """


@hookspec
def startup(gateway: Any) -> None:
    """The gateway is starting (may be async).

    Open connections, start background tasks.  An exception here stops the
    server with an error naming the plugin.
    """


@hookspec
def shutdown(gateway: Any) -> None:
    """The gateway is stopping (may be async).  Flush and close what
    ``startup`` opened.  Exceptions are logged and ignored."""


# -- the request path ----------------------------------------------------------


@hookspec
def pre_request(ctx: Any) -> Any:
    """Runs before routing, for every request (may be async).

    May change ``ctx.body`` in place (redact, render a template, rewrite the
    model).  May answer the request itself: return a complete response
    (an OpenAI ``chat.completion`` / embeddings dict) to skip the provider,
    e.g. a cache hit.  Raise :class:`portway.errors.PortwayError` to deny the
    request (a guardrail block): the client gets that error.  Return
    ``None`` to continue.  Implementations run in order; the first non-None
    answer wins and the rest are not called.
    """


@hookspec
def select_provider(ctx: Any, candidates: Any) -> Any:
    """Choose where the request goes (may be async).

    ``candidates`` is the list of :class:`portway.context.Target` still
    eligible for this request (targets that failed and were fallen back from
    are removed).  Return one of them, or ``None`` to let the next
    implementation decide.  First non-None answer wins; the built-in
    router (``portway.builtins.router``) answers last.
    """


@hookspec
def post_chunk(ctx: Any, chunk: Any) -> Any:
    """Sees each streamed chunk (an OpenAI ``chat.completion.chunk`` dict)
    before it goes to the client (may be async).

    May change ``chunk`` in place.  Return ``False`` to drop the chunk.
    Raise :class:`portway.errors.PortwayError` to end the stream with that
    error (a guardrail block on streamed output).  All implementations run,
    in order.
    """


@hookspec
def post_response(ctx: Any, response: Any) -> None:
    """Sees the whole response (may be async): the provider's answer for a
    non-streamed request, or the chunks of a stream assembled into one
    ``chat.completion`` dict after the stream ended.

    For a non-streamed request it may change ``response`` in place before
    the client sees it, or raise :class:`portway.errors.PortwayError` to
    replace it with an error.  For a stream the client already has it.
    All implementations run, in order.
    """


@hookspec
def on_error(ctx: Any, error: Any, candidates: Any) -> Any:
    """A provider call failed (may be async).

    ``error`` is a :class:`portway.errors.PortwayError` with a ``kind``
    (rate_limit, server_error, timeout, ...).  Return ``"retry"`` to try the
    same target again, ``"fallback"`` to try the next of ``candidates``,
    ``"raise"`` to give the error to the client now, or ``None`` to let the
    next implementation decide.  First non-None answer wins; the built-in
    policy (``portway.builtins.retries``) answers last.  Never called for a
    stream that has already sent its first chunk.
    """


@hookspec
def request_finished(ctx: Any) -> None:
    """The request is over: called exactly once for every request that got
    as far as a context, whatever happened to it.  A stream's is called
    after its last byte was sent (it never delays the stream's end); any
    other answer's just before it is sent, so what a plugin records of it
    is there by the time the client has the answer.  Synchronous and must
    be cheap: observability sinks put ``ctx`` on a queue and do their I/O
    in a background task.  Exceptions are logged and ignored."""

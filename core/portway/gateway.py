"""The gateway: plugins, providers and the request pipeline.

One :class:`Gateway` per app (never a module global): it owns its pluggy
manager, its provider instances and their connection pools.  Everything
that can be decided once (plugin discovery, which hooks have
implementations, model aliases) is decided in ``__init__``; the request
path only looks things up.

The pipeline of one chat request::

    pre_request ─▶ resolve model ─▶ select_provider ─▶ provider.chat ─▶ post_response
                       ▲                                    │ error
                       └──────── on_error: retry / fallback ┘

For a stream, errors before the first chunk go through ``on_error`` the same
way; after it, the client already has a 200 and the error ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import random
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from portway import catalog as model_catalog
from portway import plugins as plugin_loader
from portway import serialization, sse, tokens, tracing
from portway.config import (
    CORE_ALIAS_KEYS,
    Config,
    ConfigError,
    ModelConfig,
    RetryConfig,
    TargetConfig,
    TimeoutConfig,
    alias_key_problems,
    error_lines,
    validate_section,
)
from portway.configcheck import Catalog
from portway.context import Group, RequestContext, Route, Target
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import StreamAssembler, completion_to_chunks
from portway.hooks import Hooks
from portway.native import NativeEvent, NativeFormat, native_request_for
from portway.providers import Provider
from portway.stores.responses import MemoryResponseStore, ResponseStore

log = logging.getLogger("portway")

#: Plugin kinds whose failures are logged and skipped rather than failing a request.
NON_CRITICAL_KINDS = frozenset({"observability"})


@dataclass(frozen=True, slots=True)
class Policy:
    """How a model name's targets are retried and timed (``routing.retry`` and
    ``routing.timeout``, with an alias's own keys over them)."""

    retry: RetryConfig
    timeout: TimeoutConfig


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        extra_plugins: list[tuple[str, Any]] | None = None,
        auto_providers: bool = False,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.started_at = int(time.time())
        self.pm = plugin_loader.new_manager()
        self.plugins = plugin_loader.load(self.pm, disable=config.plugins.disable, extra=extra_plugins)
        self.hooks = Hooks(self.pm, order=config.plugins.order,
                           non_critical={p.name for p in self.plugins if p.kind in NON_CRITICAL_KINDS})
        environ = dict(os.environ) if environ is None else environ

        self.provider_types: dict[str, type[Provider]] = {}
        # A plugin failing to register is logged and counted; the others still load.
        self.hooks.each_sync("register_providers", register=self._register_provider_type)
        self._load_plugin_config()

        provider_configs = dict(config.providers)
        if auto_providers:
            provider_configs.update(self._auto_providers(provider_configs, environ))
        self.providers: dict[str, Provider] = {}
        #: Configured provider instances that cannot serve, with the reason.
        self.unavailable: dict[str, str] = {}
        for name, raw in provider_configs.items():
            cls = self.provider_types.get(raw["type"])
            if cls is None:
                why = Catalog(self.provider_types, {}, self.plugins).why_unavailable(raw["type"])
                self.unavailable[name] = f"{why}; needed by provider {name!r}"
                log.warning("%s", self.unavailable[name])
                continue
            settings = validate_section(cls.config_model, raw, config.source, f"providers.{name}")
            connect = config.routing.timeout.connect
            if connect is not None and "connect_timeout" not in settings.model_fields_set:
                settings = settings.model_copy(update={"connect_timeout": connect})
            try:
                self.providers[name] = cls(name, settings)
            except PortwayError as exc:
                raise ConfigError(f"{config.source}: providers.{name}: {exc.message}") from None

        #: What each provider/model costs, reads and writes (see :mod:`portway.catalog`).
        self.catalog = model_catalog.Catalog(self.hooks, self._catalog_overrides(config))

        self.default_policy = Policy(config.routing.retry, config.routing.timeout)
        #: Each alias's route (its targets as configured, nested aliases expanded).
        self.aliases: dict[str, Route] = {}
        options, problems = alias_key_problems(
            {a: m.model_dump(include={"targets"}, exclude_none=True) | m.plugin_keys()
             for a, m in config.models.items()}, self.alias_keys, config.source)
        if problems:
            raise ConfigError(*problems)
        groups: dict[str, Group] = {}
        for alias in config.models:
            self._group(alias, config.models, options, groups)
        for alias, model in config.models.items():
            self.aliases[alias] = self._route(alias, groups[alias], self.policy_of(model))
        #: Aliases with a ``*``: (prefix, suffix, alias), the most specific
        #: (the longest literal part) first; see :meth:`resolve`.
        self.wildcards: list[tuple[str, str, str]] = sorted(
            ((alias.partition("*")[0], alias.partition("*")[2], alias) for alias in self.aliases if "*" in alias),
            key=lambda w: (-(len(w[0]) + len(w[1])), -len(w[0]), w[2]),
        )

        self._header_routes: dict[str, Route] = {}
        #: ``<provider>/<model>`` routes made so far (see :meth:`resolve`).
        self._direct: dict[str, Route] = {}
        #: Responses API turns, for previous_response_id and retrieval (in memory: per process).
        self.responses: ResponseStore = MemoryResponseStore()

        key = config.auth.master_key
        self.master_key: str | None = key.get_secret_value() if key is not None else None
        #: What clients' keys are compared with, byte for byte (see endpoints.common.check_key).
        self.master_key_bytes: bytes | None = self.master_key.encode("utf-8") if self.master_key else None
        # Plugins whose request-path hooks depend on their config add them now, before anything
        # below asks which hooks are implemented.
        self.hooks.each_sync("register_request_hooks", contain=False, gateway=self,
                             register=lambda name, obj: self.pm.register(obj, name=name))
        self.hooks.refresh()
        self._post_chunk = self.hooks.implemented("post_chunk")
        self._post_response = self.hooks.implemented("post_response")
        self._pre_request = self.hooks.implemented("pre_request")
        # How a relayed batch is processed, built once: for chunks (with or
        # without the usage the client asked for) and per native format.
        self._chunk_relays = {wants: self._chunks(wants) for wants in (False, True)}
        self._native_relays: dict[str, Any] = {}
        #: Where spans come from (the portway-otel plugin sets its own at start-up).
        self.tracing = tracing.Tracing()
        #: API requests being served now (streams until they end), for metrics.
        self.in_flight = 0

    # -- set-up ----------------------------------------------------------------

    def _group(self, alias: str, models: dict[str, ModelConfig], options: dict[str, dict[str, Any]],
               groups: dict[str, Group]) -> Group:
        """The alias's targets as a tree: each nested alias's group is built
        once and shared (the config has no cycles).  A target whose provider
        is not available is left out."""
        found = groups.get(alias)
        if found is not None:
            return found
        members: list[Target | Group] = []
        weights: list[float] = []
        for t in models[alias].targets:
            if t.alias is not None:
                members.append(self._group(t.alias, models, options, groups))
            elif t.provider in self.providers:
                members.append(self._target(t))
            else:
                continue
            weights.append(t.weight)
        group = groups[alias] = Group(alias, tuple(members), tuple(weights), options.get(alias, {}))
        return group

    def _target(self, t: TargetConfig) -> Target:
        """A configured target (its provider is one of :attr:`providers`)."""
        return Target(self.providers[t.provider], t.model, t.weight,  # type: ignore[index,arg-type]
                      tuple(t.params.items()), t.max_concurrency)

    def policy_of(self, model: ModelConfig) -> Policy:
        """An alias's retry and timeout: its own keys over ``routing``'s."""
        routing = self.config.routing
        return Policy(model.retry.over(routing.retry) if model.retry is not None else routing.retry,
                      model.timeout.over(routing.timeout) if model.timeout is not None else routing.timeout)

    @staticmethod
    def _route(name: str, group: Group, policy: Policy, *, from_header: bool = False) -> Route:
        return Route(name, group, tuple(group.leaves()), policy, from_header)

    def _register_provider_type(self, cls: type[Provider]) -> None:
        if not cls.type:
            raise ConfigError(f"provider class {cls.__qualname__} has no 'type'")
        self.provider_types[cls.type] = cls

    def _load_plugin_config(self) -> None:
        models: dict[str, Any] = {}
        self.hooks.each_sync("register_config", register=lambda section, model: models.__setitem__(section, model))
        self.plugin_config: dict[str, Any] = {}
        #: What each plugin-declared alias key is validated by (``register_alias_keys``).
        self.alias_keys: dict[str, Any] = {}
        twice: list[str] = []
        self.hooks.each_sync("register_alias_keys", register=lambda key, kind: (
            twice.append(key) if key in CORE_ALIAS_KEYS or key in self.alias_keys
            else self.alias_keys.__setitem__(key, kind)))
        if twice:
            raise ConfigError(*(f"alias key {key!r} is declared twice (by the core or another plugin)"
                                for key in twice))
        extra = self.config.extra_sections()
        for section in extra:
            if section not in models:
                raise ConfigError(
                    f"{self.config.source}: {section}: unknown section (no installed plugin declares it)"
                )
        for section, model in models.items():
            self.plugin_config[section] = validate_section(model, extra.get(section, {}), self.config.source, section)

    def _catalog_overrides(self, config: Config) -> dict[str, model_catalog.ModelInfo]:
        overrides = {}
        for key, entry in config.catalog.items():
            instance = key.partition("/")[0]
            if instance not in self.providers and instance not in self.unavailable:
                defined = ", ".join(sorted([*self.providers, *self.unavailable])) or "none"
                raise ConfigError(f"{config.source}: catalog.{key}: no provider named {instance!r} "
                                  f"(defined: {defined})")
            overrides[key] = model_catalog.info_from_config(entry)
        return overrides

    def _auto_providers(self, existing: dict[str, Any], environ: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Embedded defaults: the mock provider, plus every installed
        provider whose standard key variable is set."""
        found: dict[str, dict[str, Any]] = {}
        for type_name, cls in sorted(self.provider_types.items()):
            if type_name in existing:
                continue
            if type_name == "mock":
                found[type_name] = {"type": type_name}
            elif cls.env_key and environ.get(cls.env_key):
                base_url = environ.get(cls.env_base_url) if cls.env_base_url else None
                if not base_url and cls.default_base_url is None:
                    continue  # no URL to send the key to (Azure's endpoint is the user's resource)
                found[type_name] = {"type": type_name, "api_key": environ[cls.env_key]}
                if base_url:
                    found[type_name]["base_url"] = base_url
        return found

    async def startup(self) -> None:
        for provider in self.providers.values():
            await provider.start()
        await self.hooks.each("startup", gateway=self)

    async def shutdown(self) -> None:
        await self.hooks.each_contained("shutdown", gateway=self)
        for provider in self.providers.values():
            await provider.close()

    # -- routing -----------------------------------------------------------------

    def resolve(self, model: str) -> Route:
        """The :class:`Route` for ``model``: its targets and how to retry and
        time them.  In order: an exact alias; ``<provider>/<model>`` for a
        configured provider; the most specific wildcard alias that matches
        (``claude-*`` before ``*``), whose targets get the matched part where
        their model has a ``*``."""
        route = self.aliases.get(model)
        if route is not None and "*" not in model:
            return self._usable(model, route)
        prefix, sep, rest = model.partition("/")
        if sep and rest:
            route = self._direct.get(model)
            if route is not None:
                return route
            provider = self.providers.get(prefix)
            if provider is not None:
                target = Target(provider, rest)
                route = Route(model, Group(model, (target,), (1.0,)), (target,), self.default_policy)
                if len(self._direct) >= DIRECT_ROUTES_KEPT:
                    self._direct.clear()  # names come from clients: a bounded memo
                self._direct[model] = route
                return route
            if prefix in self.unavailable:
                raise PortwayError(self.unavailable[prefix], kind="bad_request", code="provider_not_installed",
                                   param="model")
        for head, tail, alias in self.wildcards:
            if model.startswith(head) and model.endswith(tail) and len(model) >= len(head) + len(tail):
                matched = model[len(head):len(model) - len(tail)]
                route = self._usable(model, self.aliases[alias])
                return self._route(model, _filled(route.group, matched), route.policy)
        raise PortwayError(
            f"model {model!r} is not configured: use an alias ({', '.join(sorted(self.aliases)) or 'none defined'}) "
            f"or '<provider>/<model>' with a provider of {', '.join(sorted(self.providers)) or 'none'}",
            kind="not_found", code="model_not_found", param="model",
        )

    def header_route(self, text: str) -> Route:
        """The route a client sent in ``x-portway-config``: an alias's shape as
        JSON (``strategy``, ``targets``, ``retry``, ``timeout``, ...),
        validated like the file; its targets may only name the config's
        provider instances and aliases, so anything that would point the
        gateway elsewhere (``base_url``, a key, headers) is refused.  A 400
        saying what is wrong otherwise.  Remembered by its text."""
        found = self._header_routes.get(text)
        if found is None:
            found = self._parse_header_route(text)
            if len(self._header_routes) >= 256:
                self._header_routes.clear()
            self._header_routes[text] = found
        return found

    def _parse_header_route(self, text: str) -> Route:
        def bad(why: str) -> PortwayError:
            return PortwayError(f"x-portway-config: {why}", kind="bad_request", code="invalid_config")

        try:
            data = serialization.loads(text)
        except ValueError:
            raise bad("not valid JSON; send an alias as JSON, e.g. "
                      '{"strategy": "fallback", "targets": [{"provider": "oai", "model": "gpt-4o"}]}') from None
        if not isinstance(data, dict):
            raise bad("must be a JSON object (an alias: targets, strategy, retry, timeout, ...)")
        refused = sorted(_keys_in(data, OPEN_PROXY_KEYS))
        if refused:
            raise bad(f"may not set {', '.join(refused)}: a request can only name the provider instances and "
                      "aliases of the server's config")
        if _keys_in(data, {"max_concurrency"}):
            raise bad("may not set max_concurrency: the limits of the server's targets are the config's, shared by "
                      "every request")
        try:
            model = ModelConfig.model_validate(data, context={"providers": set(self.providers)})
        except ValidationError as exc:
            raise bad("; ".join(line.removeprefix("x-portway-config: ")
                                for line in error_lines(exc, "x-portway-config"))) from None
        options, problems = alias_key_problems({"x-portway-config": data}, self.alias_keys, "x-portway-config")
        if problems:
            raise bad("; ".join(p.removeprefix("x-portway-config: models.x-portway-config.") for p in problems))
        members: list[Target | Group] = []
        for t in model.targets:
            if t.alias is not None:
                if t.alias not in self.aliases or "*" in t.alias:
                    raise bad(f"no alias named {t.alias!r}")
                members.append(self.aliases[t.alias].group)
            else:
                members.append(self._target(t))
        group = Group("x-portway-config", tuple(members), tuple(t.weight for t in model.targets),
                      options.get("x-portway-config", {}))
        return self._route("x-portway-config", group, self.policy_of(model), from_header=True)

    def route_or_none(self, model: str) -> Route | None:
        """:meth:`resolve`, or None where it would fail."""
        try:
            return self.resolve(model)
        except PortwayError:
            return None

    def route_for(self, ctx: RequestContext) -> Route:
        """The request's route: the one the client sent in
        ``x-portway-config``, the one resolved before a ``pre_request`` hook
        read an alias option (while the model name is unchanged), or the
        model name resolved now."""
        route = ctx.current_route
        if route is None:
            route = ctx.route = self.resolve(ctx.model)
        return route

    def _usable(self, model: str, route: Route) -> Route:
        if not route.targets:
            reasons = "; ".join(self.unavailable.values()) or "no usable target"
            raise PortwayError(f"model {model!r} has no usable target: {reasons}", kind="bad_request",
                               code="provider_not_installed", param="model")
        return route

    def model_ids(self) -> list[tuple[str, str]]:
        """(id, owner) for ``GET /v1/models``: aliases, then provider models."""
        ids = [(alias, "portway") for alias in self.aliases if "*" not in alias]
        for name, provider in self.providers.items():
            ids += [(f"{name}/{model}", name) for model in provider.models()]
        return ids

    def model_owner(self, model_id: str) -> str | None:
        """Who ``GET /v1/models`` says owns ``model_id`` (an alias: portway;
        ``<provider>/<model>``: the provider), or None when the config does
        not expose it."""
        if model_id in self.aliases and "*" not in model_id:
            return "portway"
        prefix, sep, rest = model_id.partition("/")
        if sep and rest and prefix in self.providers:
            return prefix
        return None

    def model_info(self, model_id: str) -> model_catalog.ModelInfo | None:
        """What the catalog knows of an alias (its first target's entry) or
        of ``<provider>/<model>``."""
        route = self.route_or_none(model_id)
        return self.catalog.lookup(route.targets[0].provider, route.targets[0].model) if route else None

    @staticmethod
    def upstream_body(ctx: RequestContext, target: Target) -> dict[str, Any]:
        body = dict(ctx.body)
        body["model"] = target.model
        for key, value in target.params:
            body.setdefault(key, value)
        if body.get("stream"):
            # Always ask for usage, for cost and token accounting; the relay
            # hides the usage chunk from a client that did not ask for it.
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        return body

    def fitting(self, ctx: RequestContext, candidates: list[Target]) -> list[Target]:
        """The candidates whose context window can hold the request (a
        target whose window the catalog does not know is kept), in order:
        an alias falls back to a target with a bigger window rather than
        fail.  When none can, a 400 ``context_length_exceeded`` before any
        upstream call.  The request is measured only when a window is
        known and its body could be too long for it, by
        :func:`portway.tokens.lower_bound` (so a request is refused only
        when it cannot fit): the text of a request is never more bytes than
        its JSON body, so a body of at most 8 bytes a token of the smallest
        window is not walked at all."""
        windows = []
        for target in candidates:
            info = self.catalog.lookup(target.provider, target.model)
            windows.append(info.context_window if info is not None else None)
        if not any(windows):
            return candidates
        body = ctx.canonical if ctx.canonical is not None else ctx.native.body
        output = tokens.requested_output(body)
        smallest = min(window for window in windows if window)
        if (ctx.body_bytes is not None and not self._pre_request
                and ctx.body_bytes // tokens.BYTES_PER_TOKEN_MAX + output <= smallest):
            return candidates  # the text is no longer than the body: it fits, no need to measure it
        given = tokens.lower_bound(body)
        needed = given + output
        fitting = [t for t, window in zip(candidates, windows, strict=True) if window is None or needed <= window]
        if fitting:
            return fitting
        window, target = max(zip(windows, candidates, strict=True), key=lambda w: w[0] or 0)
        raise PortwayError(
            f"this request does not fit the context window of model {ctx.model!r}: {target.name} reads at most "
            f"{window} tokens, and the request needs at least {needed} ({given} input tokens, a lower-bound "
            f"estimate, plus {output} requested for the output)",
            kind="bad_request", code="context_length_exceeded", param="messages")

    async def _select(self, ctx: RequestContext, candidates: list[Target]) -> Target:
        target = await self.hooks.first("select_provider", ctx=ctx, candidates=candidates)
        if target is None:
            raise PortwayError("no provider could be selected for this request", kind="unavailable")
        ctx.target = target
        ctx.attempts += 1
        ctx.attempt_started = time.perf_counter()
        tracing.attempt(ctx)
        return target

    async def _recover(self, ctx: RequestContext, error: PortwayError, candidates: list[Target]) -> list[Target]:
        """Ask ``on_error`` what to do; return the candidates for the next
        attempt or raise ``error``."""
        tracing.attempt_failed(ctx, error)
        action = await self.hooks.first("on_error", ctx=ctx, error=error, candidates=candidates)
        failed = ctx.target.name if ctx.target else "?"
        ctx.failures.append((failed, f"{error.kind} {error.status}" if error.status else error.kind))
        if action == "retry":
            tries = ctx.metadata.get("retries_on_target", 0) + 1
            ctx.metadata["retries_on_target"] = tries
            delay = retry_delay((ctx.policy or self.default_policy).retry, tries, error.retry_after)
            log.warning("request %s: %s failed (%s, %s): %s; retry %d in %.2fs", ctx.request_id, failed,
                        error.kind, error.status, error.message, tries, delay)
            await asyncio.sleep(delay)
            ctx.upstream_wait += delay
            return candidates
        if action == "fallback":
            remaining = [t for t in candidates if t is not ctx.target]
            if remaining:
                ctx.metadata["retries_on_target"] = 0
                log.warning("request %s: %s failed (%s, %s): %s; falling back to %s", ctx.request_id, failed,
                            error.kind, error.status, error.message, remaining[0].name)
                return remaining
        log.warning("request %s: %s failed (%s, %s): %s", ctx.request_id, failed, error.kind, error.status,
                    error.message)
        raise error

    def log_stream_failure(self, ctx: RequestContext, error: PortwayError) -> None:
        """A stream that had started failed: the client gets an error event."""
        log.warning("request %s: stream from %s broke off (%s, %s): %s", ctx.request_id,
                    ctx.target.name if ctx.target else "?", error.kind, error.status, error.message)

    @staticmethod
    def _adapter_failure(target: Target, exc: Exception) -> ProviderError:
        """An adapter raised something it should have classified: a bug in
        the adapter, or an upstream answer it did not expect.  Logged with
        its traceback, and treated as a retryable upstream failure so that
        retries and fallbacks still work."""
        log.error("provider %s raised %s; treating it as a failed upstream call", target.provider.name,
                  type(exc).__name__, exc_info=exc)
        return ProviderError(f"provider {target.provider.name!r} failed: its adapter could not handle the answer "
                             f"({type(exc).__name__})", kind="server_error", status=502,
                             provider=target.provider.name)

    async def _prepare(self, ctx: RequestContext) -> dict[str, Any] | None:
        if self._pre_request:
            if ctx.native is not None:
                ctx.native.snapshot(ctx.body)  # so that what hooks change is never bypassed
            answer = await self.hooks.first("pre_request", ctx=ctx)
            if answer is not None:
                if ctx.gates:  # an answer no upstream gives still waits for what must pass first
                    try:
                        await self._gated(ctx, _no_work())
                    except _GateFailed as gate:
                        raise gate.error from None
                ctx.cached = True
                return answer
        return None

    @staticmethod
    def _gated(ctx: RequestContext, work: Any) -> Any:
        """``work`` (an upstream call) to await alongside ``ctx.gates``
        (:func:`_alongside_gates`); ``work`` itself when none wait, the
        common case, so that it pays for no layer."""
        return _alongside_gates(ctx, work) if ctx.gates else work

    # -- the request path ----------------------------------------------------------

    async def chat(self, ctx: RequestContext) -> dict[str, Any]:
        """A non-streamed chat request, answered in the canonical shape."""
        return (await self.answer(ctx))[1]

    async def embeddings(self, ctx: RequestContext) -> dict[str, Any]:
        return (await self.answer(ctx, "embeddings"))[1]

    async def rerank(self, ctx: RequestContext) -> dict[str, Any]:
        """A rerank request, answered in the canonical shape (see
        :mod:`portway.formats.rerank`), before the endpoint sorts and cuts it."""
        return (await self.answer(ctx, "rerank"))[1]

    async def answer(self, ctx: RequestContext, method: str = "chat") -> tuple[str | None, dict[str, Any]]:
        """A non-streamed request: ``method`` (``chat``, ``embeddings`` or ``rerank``)
        on the selected provider, with retries and fallbacks.  Returns the
        answer's format and the answer: ``None`` for the canonical shape, or
        the client's own format when the target spoke it as it is (a
        pass-through, see :mod:`portway.native`)."""
        response = await self._prepare(ctx)
        fmt: str | None = None
        if response is None:
            route = self.route_for(ctx)
            candidates = list(route.targets)
            limit = _answer_limit(route.policy.timeout)
            if method == "chat":
                candidates = self.fitting(ctx, candidates)
            while True:
                target = await self._select(ctx, candidates)
                native = native_request_for(ctx, target) if method == "chat" else None
                try:
                    body = native.format.upstream_body(native, ctx, target) if native is not None else None
                    if body is not None:
                        fmt = native.format.name  # type: ignore[union-attr]
                        call = target.provider.native(fmt, body, ctx)
                    else:
                        fmt = None
                        self._check_canonical(ctx)
                        call = getattr(target.provider, method)(self.upstream_body(ctx, target), ctx)
                    work = call if limit is None else _within(limit, call, target, "no answer")
                    response = await _upstream(ctx, self._gated(ctx, work))
                    break
                except _GateFailed as gate:
                    raise gate.error from None
                except PortwayError as error:
                    candidates = await self._recover(ctx, error, candidates)
                except Exception as exc:
                    candidates = await self._recover(ctx, self._adapter_failure(target, exc), candidates)
        if fmt is None or ctx.native is None:
            ctx.usage = response.get("usage")
            tracing.answered(ctx, response)
            self.price(ctx)
            if self._post_response:
                await self.hooks.each("post_response", ctx=ctx, response=response)
            return None, response
        native_format = ctx.native.format  # type: ignore[union-attr]
        view = native_format.canonical_response(response)
        ctx.usage = view.get("usage")
        tracing.answered(ctx, view)
        self.price(ctx)
        if self._post_response:
            before = serialization.dumps(view)
            await self.hooks.each("post_response", ctx=ctx, response=view)
            if serialization.dumps(view) != before:
                response = native_format.patch_response(response, view)
        return fmt, response

    async def open_stream(self, ctx: RequestContext) -> tuple[str | None, AsyncIterator[list[Any]]]:
        """Start a streamed chat completion.  Returns once the answer has
        really started (so failures before that are retried, fallen back
        from, or answered with a proper HTTP error): the stream's format
        (``None``: canonical chunks; else the client's own format, whose
        :class:`~portway.native.NativeEvent` lists are relayed as they are)
        and an iterator of lists of what arrived together."""
        answer = await self._prepare(ctx)
        if answer is not None:
            return None, self._relay(ctx, _no_more(), completion_to_chunks(answer), self._chunk_relays[_wants_usage(ctx)])
        route = self.route_for(ctx)
        candidates = list(route.targets)
        first_limit = _answer_limit(route.policy.timeout)
        candidates = self.fitting(ctx, candidates)
        while True:
            target = await self._select(ctx, candidates)
            native = native_request_for(ctx, target)
            if native is not None and self._post_chunk and (ctx.canonical_stream or not native.format.patches_streams):
                native = None  # hooks watch the chunks and this format cannot carry their changes
            body = native.format.upstream_body(native, ctx, target) if native is not None else None
            if body is None:
                native = None
            if native is not None:
                stream = target.provider.native_stream(native.format.name, body, ctx, chunks=(
                    self._post_chunk or self._post_response or (ctx.trace is not None and ctx.trace.recording)))
                is_preamble = _is_native_preamble  # type: ignore[assignment]
            else:
                stream = self._canonical_stream(ctx, target)
                is_preamble = _is_preamble
            first: list[list[Any]] = []  # the batches read before the answer started
            try:
                # Nothing reaches the client until the answer really starts: an
                # upstream that announces a role and then fails can still be
                # retried or fallen back from, invisibly.
                starting = _first_content(stream, first, is_preamble)
                work = starting if first_limit is None else _within(first_limit, starting, target, "no first content")
                await _upstream(ctx, self._gated(ctx, work))
                break
            except _GateFailed as gate:
                await stream.aclose()
                raise gate.error from None
            except StopAsyncIteration:
                if first:
                    break  # a stream that ended cleanly with nothing but its preamble
                error: PortwayError = ProviderError(
                    f"provider {target.provider.name!r} returned an empty stream", kind="server_error", status=502,
                    provider=target.provider.name)
            except PortwayError as exc:
                error = exc
            except Exception as exc:
                error = self._adapter_failure(target, exc)
            await stream.aclose()
            candidates = await self._recover(ctx, error, candidates)
        started = sse.Relayed.joined(first)  # (Relayed batches keep their bytes)
        if native is not None:
            fmt = native.format
            process = self._native_relays.get(fmt.name) or self._native_relays.setdefault(
                fmt.name, self._native_events(fmt))
            return fmt.name, self._relay(ctx, stream, started, process)
        return None, self._relay(ctx, stream, started, self._chunk_relays[_wants_usage(ctx)])

    @staticmethod
    def _check_canonical(ctx: RequestContext) -> None:
        """A request whose canonical view had to leave something out cannot
        take the canonical path: the client gets the reason, as a 400."""
        if ctx.native is not None and ctx.native.canonical_error is not None:
            raise ctx.native.canonical_error

    def _canonical_stream(self, ctx: RequestContext, target: Target) -> AsyncIterator[list[Any]]:
        """The provider's stream of canonical chunk batches, itself (no layer of
        our own: each costs every batch a hop).  A failure to start it is
        raised when it is first read, where :meth:`open_stream` handles it."""
        try:
            self._check_canonical(ctx)
            return target.provider.chat_stream_batches(self.upstream_body(ctx, target), ctx)
        except Exception as exc:
            return _raising(exc)

    async def _next(self, ctx: RequestContext, stream: AsyncIterator[list[Any]]) -> list[Any] | None:
        timeout: TimeoutConfig | None = ctx.policy.timeout if ctx.policy is not None else None
        started = time.perf_counter()
        try:
            if timeout is None or not timeout.is_set:
                return await anext(stream, None)
            limit = timeout.first_token  # the longest pause between chunks
            if timeout.total is not None and ctx.attempt_started is not None:
                left = timeout.total - (time.perf_counter() - ctx.attempt_started)
                limit = left if limit is None else min(limit, left)
            return await _within(max(limit, 0.0), anext(stream, None), ctx.target, "no next chunk")  # type: ignore[arg-type]
        except PortwayError:
            raise
        except Exception as exc:
            raise self._adapter_failure(ctx.target, exc) from exc  # type: ignore[arg-type]
        finally:
            ctx.upstream_wait += time.perf_counter() - started

    async def _relay(self, ctx: RequestContext, stream: AsyncIterator[list[Any]], first: list[Any],
                     process: Any) -> AsyncIterator[list[Any]]:
        """Relay a stream that has started: each batch through ``process``
        (usage, hooks, the assembled whole for ``post_response``), then
        ``post_response`` once it ends; the upstream stream is always closed."""
        assembler = StreamAssembler() if self._post_response else None
        try:
            batch: list[Any] | None = first
            while batch is not None:
                if ctx.first_token_at is None:
                    ctx.first_token_at = time.perf_counter()
                out = await process(ctx, batch, assembler)
                if out:
                    ctx.chunks += len(out)
                    yield out
                batch = await self._next(ctx, stream)
            if assembler is not None:
                await self.hooks.each("post_response", ctx=ctx, response=assembler.result())
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    def _chunks(self, wants_usage: bool) -> Any:
        """How a batch of canonical chunks is relayed."""
        post_chunk = self._post_chunk

        async def process(ctx: RequestContext, batch: list[dict[str, Any]],
                          assembler: StreamAssembler | None) -> list[dict[str, Any]]:
            traced = ctx.trace if ctx.trace is not None and ctx.trace.recording else None
            if traced is None and not post_chunk and assembler is None and not any(map(_has_usage, batch)):
                return batch  # nothing to watch, take or change: relayed as it came
            out = []
            changed = bool(post_chunk)  # (a hook may edit a chunk in place)
            for chunk in batch:
                usage = chunk.get("usage")
                if usage:
                    ctx.usage = usage
                if traced is not None:
                    tracing.chunk(traced, chunk)
                if post_chunk and not all(
                    r is not False for r in await self.hooks.each("post_chunk", ctx=ctx, chunk=chunk)
                ):
                    continue
                # The assembled whole is what the client got: after post_chunk edits, without dropped chunks.
                if assembler is not None:
                    assembler.add(chunk)
                if not wants_usage:
                    if "usage" in chunk:
                        changed = True
                        if usage and not chunk.get("choices"):
                            continue  # the usage chunk the gateway asked for on its own account
                        del chunk["usage"]
                elif usage and chunk.get("choices"):
                    # An upstream that puts the usage on its last choice chunk (Mistral, AI21, Groq,
                    # Fireworks): the client gets it as OpenAI sends it, a chunk of its own, last.
                    changed = True
                    del chunk["usage"]
                    out.append(chunk)
                    chunk = {**{k: v for k, v in chunk.items() if k != "choices"}, "choices": [], "usage": usage}
                out.append(chunk)
            return out if changed else batch  # unchanged: as it came (a Relayed batch keeps its bytes)

        return process

    def _native_events(self, fmt: NativeFormat) -> Any:
        """How a batch of native events is relayed: each as the upstream sent
        it, unless a ``post_chunk`` hook changed or dropped its canonical
        chunks (then :meth:`NativeFormat.patch_event` rewrites it)."""
        post_chunk = self._post_chunk

        async def process(ctx: RequestContext, batch: list[NativeEvent],
                          assembler: StreamAssembler | None) -> list[NativeEvent]:
            out = []
            traced = ctx.trace if ctx.trace is not None and ctx.trace.recording else None
            for event in batch:
                for chunk in event.chunks:
                    if chunk.get("usage"):
                        ctx.usage = chunk["usage"]
                    if traced is not None:
                        tracing.chunk(traced, chunk)
                if post_chunk and event.chunks:
                    hooked = await self._hook_native_event(ctx, fmt, event)
                    if hooked is None:
                        continue
                    event = hooked
                if assembler is not None:
                    for chunk in event.chunks:
                        assembler.add(chunk)
                out.append(event)
            return out

        return process

    async def _hook_native_event(self, ctx: RequestContext, fmt: NativeFormat,
                                 event: NativeEvent) -> NativeEvent | None:
        before = [serialization.dumps(chunk) for chunk in event.chunks]
        after: list[dict[str, Any] | None] = []
        for chunk in event.chunks:
            kept = all(r is not False for r in await self.hooks.each("post_chunk", ctx=ctx, chunk=chunk))
            after.append(chunk if kept else None)
        if all(c is not None and serialization.dumps(c) == b for c, b in zip(after, before, strict=True)):
            return event
        patched = fmt.patch_event(event, after)
        if patched is not None:
            patched.chunks = [c for c in after if c is not None]
        return patched

    # -- after the response ----------------------------------------------------------

    def price(self, ctx: RequestContext) -> None:
        """Set ``ctx.cost`` from the catalog and the usage (None when the
        model has no price, or nothing was served by an upstream)."""
        if ctx.usage is not None and ctx.target is not None:
            ctx.cost = self.catalog.cost(ctx.target.provider, ctx.target.model, ctx.usage)

    def finish(self, ctx: RequestContext) -> None:
        """The response is sent: hand the record to observability plugins."""
        ctx.finished_at = time.perf_counter()
        for gate in ctx.gates:  # never awaited (the request failed before its upstream call)
            gate.cancel()
        if ctx.cost is None:
            self.price(ctx)  # a stream's usage arrives with its end
        tracing.finish(ctx)
        self.hooks.each_sync("request_finished", ctx=ctx)


#: How many ``<provider>/<model>`` routes are remembered before the memo starts again.
DIRECT_ROUTES_KEPT = 4096

#: Keys that would point the gateway somewhere the config does not: never taken from a request.
OPEN_PROXY_KEYS = frozenset({"base_url", "api_key", "headers", "url", "endpoint", "type", "providers",
                             "aws_access_key_id", "aws_secret_access_key", "credentials"})


def _keys_in(value: Any, names: Collection[str]) -> set[str]:
    """The keys among ``names`` anywhere in a JSON value."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in names:
                found.add(key)
            found |= _keys_in(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= _keys_in(inner, names)
    return found


def _filled(group: Group, matched: str) -> Group:
    """A wildcard alias's group with ``*`` in its targets' models replaced by
    what the alias's own ``*`` matched."""
    members = tuple(_filled(m, matched) if isinstance(m, Group) else
                    Target(m.provider, m.model.replace("*", matched), m.weight, m.params, m.max_concurrency)
                    if "*" in m.model else m
                    for m in group.members)
    return Group(group.name, members, group.weights, group.options)


def _answer_limit(timeout: TimeoutConfig) -> float | None:
    """How long an attempt may wait for its answer (a whole non-streamed
    answer, or a stream's first content): the smaller limit set."""
    limits = [limit for limit in (timeout.first_token, timeout.total) if limit is not None]
    return min(limits) if limits else None


async def _within(limit: float, work: Any, target: Target, what: str) -> Any:
    """``work`` awaited for at most ``limit`` seconds; a ``timeout`` failure of
    ``target`` (retried or fallen back from like any other) when it is not done."""
    try:
        async with asyncio.timeout(limit) as scope:
            return await work
    except TimeoutError:
        if not scope.expired():
            raise
        raise ProviderError(f"provider {target.provider.name!r}: {what} within {limit:.3g} s (routing.timeout)",
                            kind="timeout", provider=target.provider.name) from None


async def _alongside_gates(ctx: RequestContext, work: Any) -> Any:
    """``work`` run alongside ``ctx.gates``: its result once every gate has
    passed; cancelled, and the gate's error raised (as :class:`_GateFailed`,
    past the retry loop), when one fails."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.gather(*ctx.gates)
    except BaseException as exc:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if isinstance(exc, Exception):
            raise _GateFailed(exc) from exc
        raise
    ctx.gates = []  # passed: a retry or fallback need not wait again
    return await task


async def _upstream(ctx: RequestContext, work: Any) -> Any:
    """``work`` (an attempt's upstream call) awaited with the attempt's span
    current, so its ``traceparent`` goes upstream; the wait counts in
    ``ctx.upstream_wait``."""
    started = time.perf_counter()
    try:
        if ctx.trace is None:  # nothing traced: no context to set
            return await work
        with tracing.upstream(ctx):
            return await work
    finally:
        ctx.upstream_wait += time.perf_counter() - started


async def _first_content(stream: AsyncIterator[list[Any]], first: list[list[Any]], is_preamble: Any) -> None:
    """Read batches onto ``first`` until one carries more than a preamble."""
    while True:
        batch = await anext(stream)
        first.append(batch)
        if not all(map(is_preamble, batch)):
            return


def retry_delay(retry: RetryConfig, tries: int, hint: str | None) -> float:
    """Seconds before retry number ``tries``: ``backoff.initial`` doubling
    up to ``backoff.max``, with jitter (between half and all of it, so that
    clients that failed together do not retry together), and at least the
    upstream's ``Retry-After`` (the policy falls back instead of retrying
    when that is longer than ``backoff.max``)."""
    ceiling = min(retry.backoff.max, retry.backoff.initial * (2 ** (tries - 1)))
    delay = ceiling * (0.5 + random.random() / 2)
    asked = retry_after_seconds(hint)
    return max(delay, asked) if asked is not None else delay


def retry_after_seconds(hint: str | None) -> float | None:
    """A ``Retry-After`` value in seconds (a number; an HTTP date is not
    waited on: None)."""
    if not hint:
        return None
    try:
        seconds = float(hint)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86_400 else None


#: Whether a chunk carries a ``usage`` key (C-level, for ``any(map(...))``).
_has_usage = operator.methodcaller("__contains__", "usage")


def _wants_usage(ctx: RequestContext) -> bool:
    """Whether the client asked for usage in its stream (OpenAI's option)."""
    return bool((ctx.body.get("stream_options") or {}).get("include_usage"))


def _is_native_preamble(event: NativeEvent) -> bool:
    """An event that only announces the answer: as the adapter says, or,
    when it converted the event, by its canonical chunks."""
    return event.preamble or (event.data is not None and all(map(_is_preamble, event.chunks)))


def _is_preamble(chunk: dict[str, Any]) -> bool:
    """A chunk that only announces the answer (the role, empty content),
    with nothing the client would miss if it came from another target."""
    if chunk.get("usage"):
        return False
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason"):
            return False
        for key, value in (choice.get("delta") or {}).items():
            if value and key != "role":
                return False
    return True


class _GateFailed(Exception):
    """A gate's error on its way past the retry loop (it is no upstream failure)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _no_work() -> None:
    return None


async def _raising(error: Exception) -> AsyncIterator[Any]:
    """A stream that fails with ``error`` when first read."""
    raise error
    yield  # an async generator


async def _no_more() -> AsyncIterator[list[dict[str, Any]]]:
    return
    yield

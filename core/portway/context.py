"""What travels with one request through the hooks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from portway.providers import Provider


@dataclass(frozen=True, slots=True)
class Target:
    """One place a model name can be served from: a provider instance and the
    upstream model name, plus routing data the router may use."""

    provider: Provider
    model: str
    weight: float = 1.0
    params: tuple[tuple[str, Any], ...] = ()
    #: Requests in flight to this target at once (portway-routing queues the rest); None: no own limit.
    max_concurrency: int | None = None
    #: ``<provider>/<model>`` (made once: routing, metrics and logs read it per request).
    name: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{self.provider.name}/{self.model}")


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """An alias's targets as configured: each member a :class:`Target` or,
    where the config names another alias, that alias's own group (strategies
    nest).  ``options`` holds the alias's plugin-declared keys, validated
    (``strategy``, ``cache``, ``guardrails``, ...)."""

    name: str
    members: tuple[Target | Group, ...]
    #: The weight of each member, in order.
    weights: tuple[float, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    def leaves(self) -> list[Target]:
        """Every target under this group, in configured order (a target
        reached by two paths once each)."""
        found: list[Target] = []
        for member in self.members:
            found += member.leaves() if isinstance(member, Group) else [member]
        return found



@dataclass(frozen=True, slots=True, eq=False)
class Route:
    """What a model name resolved to: the alias (or the name as asked, for
    ``<provider>/<model>``), its targets as a tree (``group``), flattened in
    ``targets``, and how they are retried and timed (``policy``, a
    :class:`portway.gateway.Policy`).  ``targets`` are the very objects in
    the tree, so a router can tell which member of a group a candidate
    belongs to by identity."""

    name: str
    group: Group
    targets: tuple[Target, ...]
    policy: Any
    #: True for a route a client sent in ``x-portway-config``.
    from_header: bool = False

    @property
    def options(self) -> Mapping[str, Any]:
        return self.group.options


@dataclass(slots=True, eq=False)
class RequestContext:
    """One client request.

    ``body`` is the canonical request: an OpenAI Chat Completions (or
    Embeddings) body as a plain dict, already validated.  ``pre_request``
    implementations may change it in place (redact a message, render a
    prompt template, rewrite ``model``).  ``metadata`` is scratch space for
    plugins; key it by plugin name.

    For a request in another format (``/v1/messages``), ``body`` is made from
    the client's own request (``native``) the first time something reads it:
    a request that goes to an upstream speaking that format, with no hook
    reading it, is never translated at all.

    The client's secret is never on the context: ``key_id`` is a stable,
    short, one-way id of the key the client presented (the same key gives
    the same id in every worker and on every machine), for features that
    count or limit per key.  ``headers`` holds the request headers without
    the credential-bearing ones (``authorization``, ``x-api-key``,
    ``api-key``, ``cookie``, ``proxy-authorization``).
    """

    request_id: str
    endpoint: str  # "chat.completions" | "embeddings" | "messages" | "responses"
    #: The canonical body once made (read it as ``body``).
    canonical: dict[str, Any] | None = field(default=None, repr=False)
    key_id: str | None = None
    client_format: str = "openai"  # the shape errors and responses go back in
    headers: dict[str, str] = field(default_factory=dict)
    #: The size in bytes of the client's request body as received; None when
    #: what the gateway sends can be larger (a Responses turn with its history).
    body_bytes: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    target: Target | None = None
    #: Upstream tries so far (the first, retries and fallbacks).
    attempts: int = 0
    #: When the current try began (``time.perf_counter()``), for ``routing.timeout.total``.
    attempt_started: float | None = None
    #: What the model name resolved to (a :class:`Route`); set by the gateway
    #: before routing, or by the endpoint from an ``x-portway-config`` header.
    route: Route | None = None
    #: (target name, why) of every failed try, in order: ``("oai/gpt-4o", "server_error 503")``.
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None
    usage: dict[str, Any] | None = None
    #: The response's cost in USD, from the catalog and ``usage``; None when
    #: unknown (an uncatalogued model: never zero for that).
    cost: float | None = None
    status: int = 200
    error: Exception | None = None
    cached: bool = False
    #: ``hit`` | ``miss`` | ``semantic-hit`` | ``bypass`` when a cache plugin looked; None otherwise.
    cache_status: str | None = None
    #: On a cache hit, what the answer cost when it was first paid for (USD;
    #: None when unknown).
    cost_saved: float | None = None
    #: Guardrail verdicts, in order: ``{"check", "type", "action", "category", "stage", "duration_ms"}``
    #: (never the matched text).
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    #: The client's tags from the ``x-portway-metadata`` header (a JSON object
    #: of strings, bounded; see :func:`portway.endpoints.common.parse_tags`).
    tags: dict[str, str] = field(default_factory=dict)
    #: The request's trace id (32 hex digits) when it is traced or the client
    #: sent a ``traceparent`` (see :mod:`portway.tracing`); else None.
    trace_id: str | None = None
    #: Headers plugins add to the client's response (a non-streamed answer, a
    #: stream's opening headers, an error).  For a stream only what is set
    #: before its first chunk reaches the client.
    response_headers: dict[str, str] = field(default_factory=dict)
    #: The gateway serving this request: ``ctx.gateway.plugin_config[section]``
    #: is a plugin's validated config section.
    gateway: Any = None
    #: The client's request in its own format (``/v1/messages``: the
    #: Anthropic body as sent), for a target that speaks that format as it is
    #: (a :class:`portway.native.NativeRequest`; ``None`` for OpenAI clients).
    #: Hooks read and change ``body``; the pass-through carries what they did.
    native: Any = None
    #: Seconds spent waiting on upstreams: their answers (a stream's every
    #: chunk) and the backoff between retries.  Latency minus this is the
    #: gateway's own added time.
    upstream_wait: float = 0.0
    #: Chunks (or native events) relayed to a streaming client.
    chunks: int = 0
    #: The request's spans (a :class:`portway.tracing.RequestTrace`), or None
    #: when nothing is traced.
    trace: Any = None
    #: Set by a ``pre_request`` hook that holds streamed text back and
    #: releases it in later chunks (a guardrail's window): a native
    #: pass-through stream cannot carry text moved across its events, so the
    #: stream then takes the canonical path (translated for the client).
    canonical_stream: bool = False
    #: Futures a ``pre_request`` hook started that must succeed before the
    #: answer is released (slow guardrail checks in ``parallel`` mode): the
    #: gateway runs the upstream call alongside them, cancels it when one
    #: fails, and gives the client that one's error.
    gates: list[Any] = field(default_factory=list)

    @property
    def body(self) -> dict[str, Any]:
        if self.canonical is None:
            self.canonical = self.native.canonical()
        return self.canonical

    @body.setter
    def body(self, value: dict[str, Any]) -> None:
        self.canonical = value

    @property
    def model(self) -> str:
        body = self.canonical if self.canonical is not None else self.native.body
        model = body.get("model", "")
        return model if isinstance(model, str) else ""

    @property
    def stream(self) -> bool:
        body = self.canonical if self.canonical is not None else self.native.body
        return body.get("stream") is True

    @property
    def current_route(self) -> Route | None:
        """``route`` while it still applies: the client's ``x-portway-config``
        one, or one resolved for the model name the body names now (a
        ``pre_request`` hook may have changed it since); else None."""
        route = self.route
        if route is not None and (route.from_header or route.name == self.model):
            return route
        return None

    @property
    def policy(self) -> Any:
        """How the model's targets are retried and timed (a
        :class:`portway.gateway.Policy`), once the model name is resolved."""
        return self.route.policy if self.route is not None else None

    def alias_option(self, key: str) -> Any:
        """The validated value of a plugin-declared alias key (see the
        ``register_alias_keys`` hook) for this request's model name, or None
        when its alias does not set it (or it names ``<provider>/<model>``,
        or nothing is configured under that name).  Works before routing too
        (``pre_request``): the name is resolved then, and re-resolved if a
        hook changes ``model``."""
        route = self.current_route
        if route is None:
            if self.gateway is None:
                return None
            route = self.gateway.route_or_none(self.model)
            if route is None:
                return None
            self.route = route
        return route.options.get(key)

    @property
    def latency(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

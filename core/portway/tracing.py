"""OpenTelemetry traces of the request path, through ``opentelemetry-api`` only.

Each request gets a SERVER span (its parent: the client's W3C
``traceparent``, when it sent one) and each upstream attempt a CLIENT span
under it, named and attributed after the OpenTelemetry GenAI semantic
conventions (``chat gpt-4o``, ``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.*`` ...).
The attempt's span is the current span while its upstream request is sent,
so :mod:`portway.upstream` writes its ``traceparent`` into that request.

The core never configures an SDK.  With none installed (the API's no-op
provider) a request costs one check and carries nothing, unless the client
sent a ``traceparent``: then that one is forwarded upstream unchanged, so a
trace the client started is not cut at the gateway.  The ``portway-otel``
plugin (or any code that sets a global SDK tracer provider) makes spans
real; see docs/tracing.md.

Prompts and completions never go into spans unless
:attr:`Tracing.capture_content` is set (``tracing: {capture_content: true}``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, NoOpTracerProvider, ProxyTracerProvider, SpanKind, StatusCode

if TYPE_CHECKING:
    from portway.context import RequestContext

#: ``gen_ai.operation.name`` per endpoint (rerank has no name in the conventions yet).
OPERATIONS = {"chat.completions": "chat", "messages": "chat", "responses": "chat", "compare": "chat",
              "embeddings": "embeddings", "rerank": "rerank", "count_tokens": "count_tokens"}

#: ``gen_ai.provider.name`` for provider types the conventions name differently
#: from Portway's type; any other type is used as it is.
PROVIDER_NAMES = {"bedrock": "aws.bedrock", "azure-openai": "azure.ai.openai", "vertex": "gcp.vertex_ai",
                  "gemini": "gcp.gemini", "mistral": "mistral_ai", "xai": "x_ai", "watsonx": "ibm.watsonx.ai"}

#: Request keys recorded as ``gen_ai.request.*`` when the client gave them.
_REQUEST_PARAMS = (("max_tokens", "gen_ai.request.max_tokens"),
                   ("max_completion_tokens", "gen_ai.request.max_tokens"),
                   ("temperature", "gen_ai.request.temperature"),
                   ("top_p", "gen_ai.request.top_p"))

_SERVER_ERROR = StatusCode.ERROR


#: With no SDK, the global tracer provider is looked at again at most this
#: often (a look costs an environment lookup): an SDK installed there after
#: start-up makes spans real within this many seconds.
GLOBAL_RECHECK_SECONDS = 1.0

#: Upstream calls under way with a span of Portway's current (see
#: :func:`upstream`); while there is none, :func:`inject` has nothing to do.
_attached = 0


class Tracing:
    """A gateway's tracing: the tracer provider spans come from (``None``:
    the global one, whatever an SDK set there) and whether content is
    captured.  The ``portway-otel`` plugin replaces it at start-up."""

    __slots__ = ("provider", "capture_content", "_tracer", "_recheck_at")

    def __init__(self, provider: Any = None, capture_content: bool = False) -> None:
        self.provider = provider
        self.capture_content = capture_content
        self._tracer: Any = None
        self._recheck_at = 0.0

    def tracer(self) -> Any:
        """The tracer when spans are recorded, else None (no SDK: one check,
        and a look at the global provider at most once a second)."""
        if self._tracer is not None:
            return self._tracer
        if self.provider is None:
            now = time.monotonic()
            if now < self._recheck_at:
                return None
            self._recheck_at = now + GLOBAL_RECHECK_SECONDS
        provider = self.provider if self.provider is not None else trace.get_tracer_provider()
        if isinstance(provider, (ProxyTracerProvider, NoOpTracerProvider)):
            return None
        self._tracer = provider.get_tracer("portway")
        return self._tracer


class RequestTrace:
    """One request's spans: the server span and the current attempt's span."""

    __slots__ = ("server", "attempt", "tracer", "content", "model", "finish_reasons", "output")

    def __init__(self, server: Any, tracer: Any, content: bool) -> None:
        self.server = server
        self.tracer = tracer  # None: forwarding the client's traceparent, recording nothing
        self.attempt: Any = None
        self.content = content
        self.model: str | None = None
        self.finish_reasons: list[str] = []
        self.output: dict[int, list[str]] | None = {} if content else None

    @property
    def recording(self) -> bool:
        return self.tracer is not None


def start(ctx: RequestContext, tracing: Tracing | None) -> None:
    """The request's server span (from the client's ``traceparent`` when it
    sent one); sets ``ctx.trace`` and ``ctx.trace_id``.  Nothing at all when
    no SDK is set and the client sent no ``traceparent``."""
    tracer = tracing.tracer() if tracing is not None else None
    if tracer is None:
        if "traceparent" not in ctx.headers:
            return
        parent = trace.get_current_span(propagate.extract(ctx.headers)).get_span_context()
        if not parent.is_valid:
            return
        ctx.trace = RequestTrace(NonRecordingSpan(parent), None, False)
        ctx.trace_id = format(parent.trace_id, "032x")
        return
    parent_context = propagate.extract(ctx.headers) if "traceparent" in ctx.headers else None
    operation = OPERATIONS.get(ctx.endpoint, ctx.endpoint)
    model = ctx.model
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "portway.request_id": ctx.request_id,
                                  "portway.client_format": ctx.client_format}
    if model:
        attributes["gen_ai.request.model"] = model
    _request_attributes(ctx, attributes)
    started_ns = time.time_ns() - int((time.perf_counter() - ctx.started) * 1e9)
    span = tracer.start_span(f"{operation} {model}".strip(), context=parent_context, kind=SpanKind.SERVER,
                             attributes=attributes, start_time=started_ns)
    content = tracing.capture_content  # type: ignore[union-attr]
    ctx.trace = RequestTrace(span, tracer, content)
    ctx.trace_id = format(span.get_span_context().trace_id, "032x")


def attempt(ctx: RequestContext) -> None:
    """An upstream attempt begins (``ctx.target`` is chosen): its CLIENT span."""
    rt = ctx.trace
    if rt is None or rt.tracer is None:
        return
    _end_attempt(rt, None)
    target = ctx.target
    provider = target.provider  # type: ignore[union-attr]
    operation = OPERATIONS.get(ctx.endpoint, ctx.endpoint)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER_NAMES.get(provider.type, provider.type),
        "gen_ai.request.model": target.model,  # type: ignore[union-attr]
        "portway.provider": provider.name,
        "portway.attempt": ctx.attempts,
    }
    _request_attributes(ctx, attributes)
    address = _server_address(provider)
    if address:
        attributes["server.address"] = address
    rt.attempt = rt.tracer.start_span(f"{operation} {target.model}", kind=SpanKind.CLIENT,  # type: ignore[union-attr]
                                      context=trace.set_span_in_context(rt.server), attributes=attributes)


def attempt_failed(ctx: RequestContext, error: Any) -> None:
    """The current attempt failed (it may be retried or fallen back from)."""
    rt = ctx.trace
    if rt is not None and rt.attempt is not None:
        _end_attempt(rt, error)


@contextmanager
def upstream(ctx: RequestContext) -> Iterator[None]:
    """While the upstream request is sent: the attempt's span (or, without
    an SDK, the client's ``traceparent``) is current, so it goes upstream."""
    rt = ctx.trace
    if rt is None:
        yield
        return
    global _attached
    span = rt.attempt if rt.attempt is not None else rt.server
    token = otel_context.attach(trace.set_span_in_context(span))
    _attached += 1
    try:
        yield
    finally:
        _attached -= 1
        otel_context.detach(token)


def inject(headers: dict[str, str]) -> None:
    """Write the current span's ``traceparent`` into an upstream request's
    headers (nothing when no span is current: one check while no upstream
    call anywhere has a span of Portway's current)."""
    if _attached and trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def answered(ctx: RequestContext, response: dict[str, Any]) -> None:
    """A whole (canonical) answer arrived: the response model, finish
    reasons and, when captured, the output."""
    rt = ctx.trace
    if rt is None or rt.tracer is None:
        return
    model = response.get("model")
    if isinstance(model, str):
        rt.model = model
    for choice in response.get("choices") or ():
        if isinstance(choice, dict):
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                rt.finish_reasons.append(reason)
            if rt.output is not None:
                message = choice.get("message") or {}
                text = message.get("content") if isinstance(message, dict) else None
                if isinstance(text, str):
                    rt.output.setdefault(choice.get("index", 0), []).append(text)


def chunk(rt: RequestTrace, chunk: dict[str, Any]) -> None:
    """A streamed canonical chunk went by (only called when recording)."""
    if rt.model is None and isinstance(chunk.get("model"), str):
        rt.model = chunk["model"]
    for choice in chunk.get("choices") or ():
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            rt.finish_reasons.append(reason)
        if rt.output is not None:
            text = (choice.get("delta") or {}).get("content")
            if isinstance(text, str) and text:
                rt.output.setdefault(choice.get("index", 0), []).append(text)


def finish(ctx: RequestContext) -> None:
    """The request is over: the last attempt's span and the server span end,
    with the usage, finish reasons and status."""
    rt = ctx.trace
    if rt is None or rt.tracer is None:
        return
    attributes = _outcome(ctx, rt)
    failed = ctx.status >= 400
    if rt.attempt is not None:
        rt.attempt.set_attributes(attributes)
        _end_attempt(rt, ctx.error if failed and ctx.error is not None and ctx.target is not None else None)
    server = rt.server
    server.set_attributes(attributes)
    server.set_attribute("http.response.status_code", ctx.status)
    if ctx.target is not None:
        provider = ctx.target.provider
        server.set_attribute("gen_ai.provider.name", PROVIDER_NAMES.get(provider.type, provider.type))
        server.set_attribute("portway.provider", provider.name)
    server.set_attribute("portway.attempts", ctx.attempts)
    if ctx.cost is not None:
        server.set_attribute("portway.cost_usd", ctx.cost)
    if failed:
        server.set_attribute("error.type", _error_type(ctx.error, ctx.status))
        server.set_status(_SERVER_ERROR)
    if rt.content:
        _set_input(ctx, server)  # as sent upstream: after pre_request hooks (a redaction) ran
    if rt.output:
        server.set_attribute("gen_ai.output.messages", json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "".join(parts)}]}
             for _, parts in sorted(rt.output.items())]))
    server.end()


# -- helpers ------------------------------------------------------------------------


def _end_attempt(rt: RequestTrace, error: Any) -> None:
    span = rt.attempt
    if span is None:
        return
    rt.attempt = None
    if error is not None:
        span.set_attribute("error.type", _error_type(error, getattr(error, "status", None)))
        span.set_status(_SERVER_ERROR)
    span.end()


def _error_type(error: Any, status: int | None) -> str:
    kind = getattr(error, "kind", None)
    if isinstance(kind, str):
        return kind
    if error is not None:
        return type(error).__qualname__
    return str(status) if status else "_OTHER"


def _request_attributes(ctx: RequestContext, attributes: dict[str, Any]) -> None:
    body = ctx.canonical if ctx.canonical is not None else ctx.native.body if ctx.native is not None else {}
    for key, name in _REQUEST_PARAMS:
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = value


def _outcome(ctx: RequestContext, rt: RequestTrace) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if rt.model:
        attributes["gen_ai.response.model"] = rt.model
    if rt.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = rt.finish_reasons
    usage = ctx.usage
    if isinstance(usage, dict):
        for key, name in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                          ("completion_tokens", "gen_ai.usage.output_tokens")):
            value = usage.get(key)
            if type(value) is int:
                attributes[name] = value
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if type(cached) is int:
            attributes["gen_ai.usage.cache_read.input_tokens"] = cached
    return attributes


def _server_address(provider: Any) -> str | None:
    base = getattr(provider, "base_url", None)
    if not isinstance(base, str):
        return None
    rest = base.partition("://")[2]
    return rest.partition("/")[0].rpartition("@")[2] or None


def _set_input(ctx: RequestContext, span: Any) -> None:
    try:
        messages = ctx.body.get("messages")
    except Exception:  # a native request with no canonical view
        return
    if isinstance(messages, list):
        span.set_attribute("gen_ai.input.messages", json.dumps(messages, default=str))

"""OpenTelemetry traces for Portway: wires the SDK behind the core's spans.

The core makes the spans with ``opentelemetry-api`` only (see
:mod:`portway.tracing` and docs/tracing.md): a SERVER span per request and a
CLIENT span per upstream attempt, with the GenAI semantic-convention
attributes.  This plugin gives them somewhere to go: a tracer provider of the
SDK per gateway (the process's global provider is left alone), sampling by
trace id ratio (a client's sampled ``traceparent`` decides for its
trace), and an exporter: ``otlp`` (OTLP over HTTP, the optional
``portway-otel[otlp]``), ``console``, ``memory``, or ``none`` (the default:
tracing off).
"""

from __future__ import annotations

import importlib
import importlib.util
import weakref
from typing import Any, Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from pydantic import BaseModel, ConfigDict, Field, model_validator

import portway
from portway import hookimpl
from portway.tracing import Tracing

PORTWAY_PLUGIN_KIND = "observability"

OTLP_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class TracingConfig(BaseModel):
    """The ``tracing:`` section."""

    model_config = ConfigDict(extra="forbid")

    #: Where spans go: an OTLP/HTTP collector, stdout, kept in memory (read
    #: them with :func:`memory_of`, e.g. in tests), or ``none``: tracing off,
    #: no span is made (the default: the plugin installed costs nothing).
    exporter: Literal["otlp", "console", "memory", "none"] = "none"
    #: The OTLP traces URL (default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
    #: $OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else http://localhost:4318/v1/traces).
    endpoint: str | None = None
    #: Extra headers for the OTLP exporter (an API key of a hosted backend).
    headers: dict[str, str] = Field(default_factory=dict)
    #: The share of traces started here that are recorded (a client's
    #: traceparent decides for its own trace).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    #: Put prompts and completions into spans (gen_ai.input.messages,
    #: gen_ai.output.messages).  Off: they may hold personal data.
    capture_content: bool = False
    #: ``service.name`` of the spans' resource.
    service_name: str = "portway"

    @model_validator(mode="after")
    def _exporter_installed(self) -> TracingConfig:
        # Said by `portway config check`, with the file and key, rather than at start-up.
        if self.exporter == "otlp" and not _installed(OTLP_MODULE):
            raise ValueError("exporter otlp needs the OTLP exporter: pip install 'portway-otel[otlp]'")
        return self


#: Each started gateway's tracer provider.
_providers: weakref.WeakKeyDictionary[Any, TracerProvider] = weakref.WeakKeyDictionary()
#: The in-memory exporter of each gateway with ``exporter: memory``.
_memories: weakref.WeakKeyDictionary[Any, InMemorySpanExporter] = weakref.WeakKeyDictionary()


def provider_of(gateway: Any) -> TracerProvider | None:
    """The SDK tracer provider of a started gateway (to add a span processor)."""
    return _providers.get(gateway)


def memory_of(gateway: Any) -> InMemorySpanExporter | None:
    """With ``exporter: memory``: the exporter holding the finished spans."""
    return _memories.get(gateway)


@hookimpl
def register_config(register: Any) -> None:
    register("tracing", TracingConfig)


@hookimpl
def startup(gateway: Any) -> None:
    config: TracingConfig = gateway.plugin_config["tracing"]
    if config.exporter == "none":
        return
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        resource=Resource.create({"service.name": config.service_name, "service.version": portway.__version__}),
    )
    if config.exporter == "memory":
        memory = _memories[gateway] = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))  # in memory: nothing to wait for
    else:
        # Exports in the processor's own thread: never on the event loop.
        provider.add_span_processor(BatchSpanProcessor(_exporter(config)))
    _providers[gateway] = provider
    gateway.tracing = Tracing(provider, capture_content=config.capture_content)


@hookimpl
def shutdown(gateway: Any) -> None:
    provider = _providers.pop(gateway, None)
    _memories.pop(gateway, None)
    if provider is not None:
        gateway.tracing = Tracing()
        provider.shutdown()  # flushes what is still queued


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _exporter(config: TracingConfig) -> Any:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    exporter = importlib.import_module(OTLP_MODULE).OTLPSpanExporter  # checked by TracingConfig
    return exporter(endpoint=config.endpoint, headers=config.headers or None)

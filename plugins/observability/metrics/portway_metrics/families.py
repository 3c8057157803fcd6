"""Every metric family the plugin exposes, as data.

``docs/metrics.md`` is generated from this table (``python -m
portway_metrics.docs``) and a test checks it, and this table, against what
the registry really exposes, so neither can drift.
"""

from __future__ import annotations

from dataclasses import dataclass

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
COST = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1, 10)
RATE = (1, 5, 10, 25, 50, 100, 200, 500, 1000, 5000)
CHUNKS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
ATTEMPTS = (1, 2, 3, 4, 5, 8, 13)
BYTES = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)


@dataclass(frozen=True)
class Family:
    name: str  # without the ``_total`` a counter gets in the exposition
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    #: How ``--workers N`` combines a gauge's per-worker values (prometheus-client's multiprocess_mode).
    multiprocess: str = "livesum"
    #: Where the value comes from: ``request`` (each finished request), ``sampled``
    #: (read from the gateway and plugins when scraped, and every ``sample_interval``
    #: with several workers), ``static`` (set at start-up).
    source: str = "request"


F = Family

FAMILIES: tuple[Family, ...] = (
    # -- traffic ----------------------------------------------------------------------
    F("portway_requests", "counter", ("endpoint", "model", "provider", "status"),
      "API requests finished, by endpoint, model (configured names only, else 'other'), the provider "
      "that served it ('cache' for an answer from a pre_request hook, 'none' when no upstream answered) "
      "and HTTP status"),
    F("portway_request_errors", "counter", ("endpoint", "kind"),
      "Requests that ended in an error, by error kind (rate_limit, timeout, bad_request, ...; "
      "'internal' for an unexpected exception)"),
    F("portway_client_disconnects", "counter", ("endpoint",),
      "Requests whose client went away before the answer was complete (status 499)"),
    F("portway_requests_in_flight", "gauge", (),
      "API requests being served now (a stream until its end)", source="sampled"),
    F("portway_request_body_bytes", "histogram", ("endpoint",),
      "Size of the client's request body", BYTES),
    F("portway_streams", "counter", ("endpoint", "model", "provider"),
      "Streamed requests finished"),
    # -- latency -----------------------------------------------------------------------
    F("portway_request_duration_seconds", "histogram", ("endpoint", "model", "provider"),
      "Time from the request's arrival to its last byte", LATENCY),
    F("portway_time_to_first_token_seconds", "histogram", ("endpoint", "model", "provider"),
      "Streams: time from the request's arrival to the first content sent to the client", LATENCY),
    F("portway_upstream_duration_seconds", "histogram", ("provider",),
      "Time spent waiting on upstreams per request: every attempt's answer (a stream's every chunk) "
      "and the backoff between retries", LATENCY),
    F("portway_gateway_overhead_seconds", "histogram", ("endpoint", "stream"),
      "The gateway's own added time: request duration minus the upstream time (for a stream, also "
      "the time its client took to read)", OVERHEAD),
    F("portway_stream_duration_seconds", "histogram", ("model", "provider"),
      "Streams: time from the first content to the end of the stream", LATENCY),
    F("portway_stream_chunks", "histogram", ("model", "provider"),
      "Streams: chunks (or native events) sent to the client per stream", CHUNKS),
    F("portway_stream_errors", "counter", ("provider", "kind"),
      "Streams that had started and ended with an error event"),
    F("portway_output_tokens_per_second", "histogram", ("model", "provider"),
      "Output tokens per second of generation (after the first token for a stream)", RATE),
    # -- tokens and cost ------------------------------------------------------------------
    F("portway_input_tokens", "counter", ("model", "provider"),
      "Input (prompt) tokens, as the upstream counted them; cached reads included"),
    F("portway_output_tokens", "counter", ("model", "provider"),
      "Output (completion) tokens, reasoning included"),
    F("portway_cached_input_tokens", "counter", ("model", "provider"),
      "Input tokens read from the provider's prompt cache"),
    F("portway_cache_write_tokens", "counter", ("model", "provider"),
      "Input tokens written to the provider's prompt cache"),
    F("portway_reasoning_tokens", "counter", ("model", "provider"),
      "Output tokens spent on reasoning"),
    F("portway_request_input_tokens", "histogram", ("model",),
      "Input tokens per request", TOKENS),
    F("portway_request_output_tokens", "histogram", ("model",),
      "Output tokens per request", TOKENS),
    F("portway_cost_usd", "counter", ("model", "provider"),
      "Cost in US dollars, from the model catalog's prices"),
    F("portway_request_cost_usd", "histogram", ("model",),
      "Cost per priced request in US dollars", COST),
    F("portway_unpriced_requests", "counter", ("model", "provider"),
      "Requests with a usage but no known price (their cost is unknown, not zero)"),
    # -- retries, fallbacks, breakers -------------------------------------------------------
    F("portway_upstream_attempts", "counter", ("provider",),
      "Upstream attempts (the first try, retries and fallbacks), by the provider tried"),
    F("portway_upstream_failures", "counter", ("provider", "kind"),
      "Upstream attempts that failed, by provider and error kind"),
    F("portway_retries", "counter", ("provider",),
      "Attempts that retried the same target after it failed"),
    F("portway_fallbacks", "counter", ("model",),
      "Attempts that went to another target after one failed"),
    F("portway_request_attempts", "histogram", ("endpoint",),
      "Upstream attempts per request that reached an upstream", ATTEMPTS),
    F("portway_breaker_state", "gauge", ("target", "state"),
      "Circuit breakers per target: 1 for the state it is in (closed, open, half_open); with "
      "several workers, how many workers see it so", source="sampled"),
    F("portway_breaker_trips", "counter", ("target",),
      "Times a target's breaker opened", source="sampled"),
    # -- concurrency limits and their queues (portway-routing: max_concurrency, routing.queue) -------
    F("portway_concurrency_limit", "gauge", ("limiter",),
      "max_concurrency of each limited provider instance or target (per worker)", source="sampled"),
    F("portway_concurrency_in_use", "gauge", ("limiter",),
      "Requests holding one of a limiter's slots now", source="sampled"),
    F("portway_queue_depth", "gauge", ("limiter",),
      "Requests waiting for a limiter's slot now", source="sampled"),
    F("portway_queue_wait_seconds", "counter", ("limiter",),
      "Seconds waited for a slot by requests that got one (divide by portway_queue_waited_requests_total "
      "for the mean wait)", source="sampled"),
    F("portway_queue_waited_requests", "counter", ("limiter",),
      "Requests that waited for a slot and got one", source="sampled"),
    F("portway_queue_rejections", "counter", ("limiter",),
      "Requests refused a slot (the queue was full, or the wait passed routing.queue.timeout): a 429",
      source="sampled"),
    # -- cache and guardrails ------------------------------------------------------------------------
    F("portway_cache_requests", "counter", ("endpoint", "result"),
      "Requests by what the response cache did (hit, semantic-hit, miss, bypass)"),
    F("portway_guardrail_verdicts", "counter", ("check", "action", "stage"),
      "Guardrail findings by check, action taken (block, redact, flag, ...) and stage"),
    F("portway_guardrail_blocked_requests", "counter", ("endpoint",),
      "Requests a guardrail denied"),
    # -- the request log -------------------------------------------------------------------------
    F("portway_log_queue_depth", "gauge", (),
      "Request-log records waiting to be written", source="sampled"),
    F("portway_log_queue_size", "gauge", (),
      "The request log's queue limit", multiprocess="livesum", source="sampled"),
    F("portway_log_records_written", "counter", (),
      "Request-log records written to the store", source="sampled"),
    F("portway_log_records_dropped", "counter", ("reason",),
      "Request-log records lost: queue_full or store_error", source="sampled"),
    F("portway_log_write_errors", "counter", (),
      "Request-log batches that failed to write", source="sampled"),
    # -- plugins and hooks -------------------------------------------------------------------------
    F("portway_hook_calls", "counter", ("plugin", "hook"),
      "Calls of each plugin's hook implementations", source="sampled"),
    F("portway_hook_duration_seconds", "counter", ("plugin", "hook"),
      "Seconds spent in each plugin's hook implementations (async ones until their answer)", source="sampled"),
    F("portway_hook_errors", "counter", ("plugin", "hook"),
      "Unexpected exceptions raised by each plugin's hook implementations", source="sampled"),
    F("portway_plugins", "gauge", ("kind", "status"),
      "Installed plugins by kind and status (enabled, disabled, error)", multiprocess="livemax", source="static"),
    # -- upstream connections ----------------------------------------------------------------------
    F("portway_upstream_connections_in_use", "gauge", ("provider",),
      "Pooled upstream connections in use now (httptools and aiohttp transports)", source="sampled"),
    F("portway_upstream_connections_limit", "gauge", ("provider",),
      "The pool's max_connections per provider (per worker)", multiprocess="livesum", source="static"),
    F("portway_upstream_streams_draining", "gauge", ("provider",),
      "Finished streams whose connection is still reading its last bytes", source="sampled"),
    # -- the gateway -----------------------------------------------------------------------------
    F("portway_providers", "gauge", ("status",),
      "Configured provider instances: ready, or unavailable (type not installed)",
      multiprocess="livemax", source="static"),
    F("portway_model_aliases", "gauge", (),
      "Configured model aliases", multiprocess="livemax", source="static"),
    F("portway_build_info", "gauge", ("version",),
      "Always 1: the Portway version serving", multiprocess="livemax", source="static"),
    F("portway_start_time_seconds", "gauge", (),
      "When the gateway started (Unix time)", multiprocess="min", source="static"),
    F("portway_workers", "gauge", (),
      "Worker processes serving (each counts itself)", multiprocess="livesum", source="static"),
)

#: Families of prometheus-client's own collectors (one process: the serving
#: process; with workers they are left out, see docs/metrics.md).
PROCESS_PREFIXES = ("process_", "python_")


def by_name() -> dict[str, Family]:
    return {family.name: family for family in FAMILIES}

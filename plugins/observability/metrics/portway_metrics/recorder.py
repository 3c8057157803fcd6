"""The metrics of one gateway: updated in-process by ``request_finished``,
sampled from the gateway and its plugins when scraped.

One :class:`Metrics` per gateway, in its own registry (never the process's
default one), so several gateways in one process (tests) do not mix.

``--workers N``: ``portway serve`` sets ``PROMETHEUS_MULTIPROC_DIR``, each
worker's values go to files there (prometheus-client's multiprocess mode),
and a scrape answered by any worker sums them all.  Values read from the
gateway (in flight, breakers, pools, the log queue, hook counts) are
written to those files by each worker when it answers a scrape and every
``metrics.sample_interval`` seconds, so another worker's may be that old.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric

import portway
from portway.hooks import REQUEST_HOOKS
from portway_metrics.families import FAMILIES, Family

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# ``_created`` series double the output and no dashboard reads them.
prometheus_client.disable_created_metrics()

_BREAKER_STATES = ("closed", "open", "half_open")

#: The hooks whose calls are counted (start-up and registration hooks run once).
REQUEST_PATH_HOOKS = REQUEST_HOOKS | {"request_finished"}


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Series:
    """The children of one (endpoint, model, provider) triple, resolved once:
    the request path then touches no label machinery."""

    __slots__ = ("duration", "ttft", "overhead", "streams", "stream_duration", "chunks", "tps",
                 "input", "output", "cached", "cache_write", "reasoning", "input_hist", "output_hist", "cost",
                 "cost_hist", "unpriced", "upstream")

    def __init__(self, m: dict[str, Any], endpoint: str, model: str, provider: str, stream: bool) -> None:
        # Only the series this kind of request can move: a stream's for streams, the
        # upstream's and the tokens' when something answered.
        self.duration = m["portway_request_duration_seconds"].labels(endpoint, model, provider)
        self.overhead = m["portway_gateway_overhead_seconds"].labels(endpoint, "true" if stream else "false")
        if stream:
            self.ttft = m["portway_time_to_first_token_seconds"].labels(endpoint, model, provider)
            self.streams = m["portway_streams"].labels(endpoint, model, provider)
            self.stream_duration = m["portway_stream_duration_seconds"].labels(model, provider)
            self.chunks = m["portway_stream_chunks"].labels(model, provider)
        if provider == "none":
            return
        self.upstream = m["portway_upstream_duration_seconds"].labels(provider)
        self.tps = m["portway_output_tokens_per_second"].labels(model, provider)
        self.input = m["portway_input_tokens"].labels(model, provider)
        self.output = m["portway_output_tokens"].labels(model, provider)
        self.cached = m["portway_cached_input_tokens"].labels(model, provider)
        self.cache_write = m["portway_cache_write_tokens"].labels(model, provider)
        self.reasoning = m["portway_reasoning_tokens"].labels(model, provider)
        self.input_hist = m["portway_request_input_tokens"].labels(model)
        self.output_hist = m["portway_request_output_tokens"].labels(model)
        self.cost = m["portway_cost_usd"].labels(model, provider)
        self.cost_hist = m["portway_request_cost_usd"].labels(model)
        self.unpriced = m["portway_unpriced_requests"].labels(model, provider)


class Metrics:
    """The registry and the request-path update of one gateway."""

    def __init__(self, gateway: Any, config: Any) -> None:
        self.gateway = gateway
        self.config = config
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=False)
        self.m: dict[str, Any] = {family.name: _make(family, self.registry) for family in FAMILIES}
        if not self.multiprocess:
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
            prometheus_client.GCCollector(registry=self.registry)
        self._series: dict[tuple[str, str, str, bool], _Series] = {}
        self._requests: dict[tuple[str, str, str, int], Any] = {}
        #: Model names that may stand as a label (everything else is 'other').
        self.model_names = self._model_names(gateway)
        self._last: dict[Any, float] = {}  # sampled counters: the value last added
        self._static(gateway)

    # -- labels --------------------------------------------------------------------------

    @staticmethod
    def _model_names(gateway: Any) -> frozenset[str]:
        names = {alias for alias in gateway.aliases}
        for provider_name, provider in gateway.providers.items():
            names.update(f"{provider_name}/{model}" for model in provider.models())
        for route in gateway.aliases.values():
            names.update(target.name for target in route.targets if "*" not in target.model)
        return frozenset(names)

    def model_label(self, model: str) -> str:
        """``model`` when the config names it (an alias, a provider's listed
        model, an alias's target), the matching wildcard alias, else
        ``<provider>/other`` for a configured provider, else ``other``: the
        name comes from the client, the label's values must stay few."""
        if model in self.model_names:
            return model
        for head, tail, alias in self.gateway.wildcards:
            if model.startswith(head) and model.endswith(tail) and len(model) >= len(head) + len(tail):
                return alias
        prefix, sep, _ = model.partition("/")
        if sep and prefix in self.gateway.providers:
            return f"{prefix}/other"
        return "other"

    # -- the request path ----------------------------------------------------------------

    def finished(self, ctx: Any) -> None:
        """One finished request: counters and histograms, in-process."""
        m = self.m
        endpoint = ctx.endpoint
        known = ctx.canonical is not None or ctx.native is not None
        model = self.model_label(ctx.model) if known else "other"
        target = ctx.target
        provider = target.provider.name if target is not None else ("cache" if ctx.cached else "none")
        status = ctx.status
        stream = known and ctx.stream
        key = (endpoint, model, provider, status)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = m["portway_requests"].labels(endpoint, model, provider, str(status))
        requests.inc()
        skey = (endpoint, model, provider, stream)
        series = self._series.get(skey)
        if series is None:
            series = self._series[skey] = _Series(m, endpoint, model, provider, stream)

        latency = ctx.latency
        if latency is not None:
            series.duration.observe(latency)
            if ctx.attempts and target is not None:
                series.upstream.observe(ctx.upstream_wait)
            series.overhead.observe(max(latency - ctx.upstream_wait, 0.0))
        if ctx.body_bytes is not None:
            m["portway_request_body_bytes"].labels(endpoint).observe(ctx.body_bytes)

        if status >= 400:
            if status == 499:
                m["portway_client_disconnects"].labels(endpoint).inc()
            else:
                error = ctx.error
                kind = getattr(error, "kind", None) or "internal"
                m["portway_request_errors"].labels(endpoint, kind).inc()
                if ctx.first_token_at is not None:
                    m["portway_stream_errors"].labels(provider, kind).inc()
                if getattr(error, "code", None) == "guardrail_denied":
                    m["portway_guardrail_blocked_requests"].labels(endpoint).inc()

        first = ctx.first_token_at
        if stream:
            series.streams.inc()
            series.chunks.observe(ctx.chunks)
            if first is not None:
                series.ttft.observe(first - ctx.started)
                if ctx.finished_at is not None:
                    series.stream_duration.observe(ctx.finished_at - first)

        usage = ctx.usage
        if usage and provider != "none":
            self._usage(series, usage, ctx, first)
            cost = ctx.cost
            if cost is not None:
                series.cost.inc(cost)
                series.cost_hist.observe(cost)
            elif target is not None:
                series.unpriced.inc()

        if ctx.attempts:
            self._attempts(ctx, endpoint, model)
        cache_status = getattr(ctx, "cache_status", None)
        if cache_status:
            m["portway_cache_requests"].labels(endpoint, cache_status).inc()
        verdicts = getattr(ctx, "verdicts", None)
        if verdicts:
            for verdict in verdicts:
                if isinstance(verdict, dict):
                    m["portway_guardrail_verdicts"].labels(str(verdict.get("check")), str(verdict.get("action")),
                                                          str(verdict.get("stage"))).inc()

    def _usage(self, series: _Series, usage: dict[str, Any], ctx: Any, first: float | None) -> None:
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if type(prompt) is int and prompt >= 0:
            series.input.inc(prompt)
            series.input_hist.observe(prompt)
        if type(completion) is int and completion >= 0:
            series.output.inc(completion)
            series.output_hist.observe(completion)
            start = first if first is not None else None
            end = ctx.finished_at
            if completion and start is not None and end is not None and end > start:
                series.tps.observe(completion / (end - start))
            elif completion and first is None and ctx.upstream_wait > 0:
                series.tps.observe(completion / ctx.upstream_wait)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached = details.get("cached_tokens")
            if type(cached) is int and cached > 0:
                series.cached.inc(cached)
            written = details.get("cache_write_tokens")
            if type(written) is int and written > 0:
                series.cache_write.inc(written)
        out = usage.get("completion_tokens_details")
        if isinstance(out, dict):
            reasoning = out.get("reasoning_tokens")
            if type(reasoning) is int and reasoning > 0:
                series.reasoning.inc(reasoning)

    def _attempts(self, ctx: Any, endpoint: str, model: str) -> None:
        m = self.m
        m["portway_request_attempts"].labels(endpoint).observe(ctx.attempts)
        tried = [name for name, _ in ctx.failures]
        final = ctx.target.name if ctx.target is not None else None
        if final is not None and len(tried) < ctx.attempts:
            tried.append(final)  # the last attempt: it answered, or failed after its stream started
        for name in tried:
            m["portway_upstream_attempts"].labels(name.partition("/")[0]).inc()
        for name, why in ctx.failures:
            m["portway_upstream_failures"].labels(name.partition("/")[0], why.partition(" ")[0]).inc()
        for before, after in zip(tried, tried[1:], strict=False):
            if before == after:
                m["portway_retries"].labels(before.partition("/")[0]).inc()
            else:
                m["portway_fallbacks"].labels(model).inc()

    # -- sampled and static values ----------------------------------------------------------

    def _static(self, gateway: Any) -> None:
        m = self.m
        counts: dict[tuple[str, str], int] = {}
        for info in gateway.plugins:
            status = "error" if info.error else ("enabled" if info.enabled else "disabled")
            counts[(info.kind, status)] = counts.get((info.kind, status), 0) + 1
        for (kind, status), count in counts.items():
            m["portway_plugins"].labels(kind, status).set(count)
        m["portway_providers"].labels("ready").set(len(gateway.providers))
        m["portway_providers"].labels("unavailable").set(len(gateway.unavailable))
        m["portway_model_aliases"].set(len(gateway.aliases))
        m["portway_build_info"].labels(portway.__version__).set(1)
        m["portway_start_time_seconds"].set(gateway.started_at)
        m["portway_workers"].set(1)
        for name, provider in gateway.providers.items():
            m["portway_upstream_connections_limit"].labels(name).set(provider.config.max_connections)

    def refresh(self) -> None:
        """Read what the gateway and its plugins count themselves."""
        m = self.m
        gateway = self.gateway
        m["portway_requests_in_flight"].set(getattr(gateway, "in_flight", 0))
        for (plugin, hook), stats in list(gateway.hooks.stats.items()):
            if hook not in REQUEST_PATH_HOOKS:
                continue
            self._add(("calls", plugin, hook), stats.calls, m["portway_hook_calls"].labels(plugin, hook))
            self._add(("seconds", plugin, hook), stats.seconds, m["portway_hook_duration_seconds"].labels(plugin, hook))
            self._add(("errors", plugin, hook), stats.errors, m["portway_hook_errors"].labels(plugin, hook))
        for name, provider in gateway.providers.items():
            http = getattr(provider, "_http", None)
            slots = getattr(http, "_slots", None)
            if http is None:
                continue
            limit = provider.config.max_connections
            in_use = limit - slots._value if slots is not None else 0  # asyncio.Semaphore's free slots
            m["portway_upstream_connections_in_use"].labels(name).set(in_use)
            m["portway_upstream_streams_draining"].labels(name).set(len(getattr(http, "_drains", ())))
        self._breakers(gateway)
        self._log_sink(gateway)

    def _breakers(self, gateway: Any) -> None:
        try:
            from portway_routing.breaker import breakers_of
        except ImportError:  # the routing plugin is not installed
            return
        breakers = breakers_of(gateway)
        if breakers is None:
            return
        state = self.m["portway_breaker_state"]
        for target, breaker in list(breakers.by_target.items()):
            for name in _BREAKER_STATES:
                state.labels(target, name).set(1 if breaker.state == name else 0)
            self._add(("trips", target), breaker.trips, self.m["portway_breaker_trips"].labels(target))

    def _log_sink(self, gateway: Any) -> None:
        """The request log's figures, through its documented interface
        (``portway_log.sink_of(gateway)``: an object with ``queue_depth``,
        ``queue_size``, ``written``, ``dropped_queue_full``,
        ``dropped_store_error`` and ``write_errors``), when it is installed."""
        try:
            from portway_log import sink_of  # type: ignore[import-not-found]
        except ImportError:
            return
        sink = sink_of(gateway)
        if sink is None:
            return
        m = self.m
        m["portway_log_queue_depth"].set(sink.queue_depth)
        m["portway_log_queue_size"].set(sink.queue_size)
        self._add(("log", "written"), sink.written, m["portway_log_records_written"])
        self._add(("log", "queue_full"), sink.dropped_queue_full, m["portway_log_records_dropped"].labels("queue_full"))
        self._add(("log", "store_error"), sink.dropped_store_error,
                  m["portway_log_records_dropped"].labels("store_error"))
        self._add(("log", "errors"), sink.write_errors, m["portway_log_write_errors"])

    def _add(self, key: Any, total: float, counter: Any) -> None:
        """A counter kept elsewhere, mirrored: add what it grew by since last time."""
        grew = total - self._last.get(key, 0)
        if grew > 0:
            counter.inc(grew)
            self._last[key] = total
        elif key not in self._last:
            counter.inc(0)  # the series exists from the start
            self._last[key] = total

    # -- exposition ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        self.refresh()
        if not self.multiprocess:
            return prometheus_client.generate_latest(self.registry)
        registry = CollectorRegistry()
        registry.register(_EveryFamily(prometheus_multiprocess.MultiProcessCollector(None)))
        return prometheus_client.generate_latest(registry)

    def close(self) -> None:
        """The worker stops: its live gauges leave the sums."""
        if self.multiprocess:
            prometheus_multiprocess.mark_process_dead(os.getpid())


class _EveryFamily:
    """The workers' sums, plus every family none of them has a value for yet
    (so the list of families does not depend on the traffic so far)."""

    def __init__(self, collector: Any) -> None:
        self.collector = collector

    def collect(self) -> Any:
        seen = set()
        for family in self.collector.collect():
            seen.add(family.name)
            yield family
        for family in FAMILIES:
            if family.name not in seen:
                yield Metric(family.name, family.help, family.kind)


def _make(family: Family, registry: CollectorRegistry) -> Any:
    if family.kind == "counter":
        return Counter(family.name, family.help, family.labels, registry=registry)
    if family.kind == "gauge":
        return Gauge(family.name, family.help, family.labels, registry=registry,
                     multiprocess_mode=family.multiprocess)
    return Histogram(family.name, family.help, family.labels, registry=registry, buckets=family.buckets)

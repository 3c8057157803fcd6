"""The metrics of one gateway: updated in-process by ``request_finished``,
sampled from the gateway and its plugins when scraped.

The request path never touches prometheus-client: it adds to plain numbers
(:class:`_Count`, :class:`_Hist`: no lock, the event loop is the only
writer), and :meth:`Metrics.refresh` hands what they grew by to the
registry's metrics when ``/metrics`` is scraped (and, with several workers,
every ``sample_interval``).  A request then costs a few microseconds instead
of a prometheus-client observation per histogram (a lock and a loop each:
about 27 µs a request measured here, against about 5 µs this way).

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
from bisect import bisect_left
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric

import portway
from portway.errors import PortwayError
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


class _Count:
    """A counter's child, accumulated in plain numbers until flushed."""

    __slots__ = ("value", "flushed", "child")

    def __init__(self, child: Any) -> None:
        self.value = 0.0
        self.flushed = 0.0
        self.child = child

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def flush(self) -> None:
        grew = self.value - self.flushed
        if grew:
            self.child.inc(grew)
            self.flushed += grew


class _Hist:
    """A histogram's child: per-bucket counts (the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum", "flushed", "flushed_sum", "child")

    def __init__(self, child: Any, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.flushed = [0] * (len(bounds) + 1)
        self.flushed_sum = 0.0
        self.child = child

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def flush(self) -> None:
        # prometheus-client keeps a histogram as per-bucket values (_buckets, +Inf last) and _sum:
        # the same layout, so what grew is added bucket by bucket.
        buckets = self.child._buckets
        for i, count in enumerate(self.counts):
            grew = count - self.flushed[i]
            if grew:
                buckets[i].inc(grew)
                self.flushed[i] = count
        grew_sum = self.sum - self.flushed_sum
        if grew_sum:
            self.child._sum.inc(grew_sum)
            self.flushed_sum += grew_sum


class _Family:
    """The request path's side of one counter or histogram family: its
    children by label values, made on first use."""

    __slots__ = ("metric", "bounds", "children")

    def __init__(self, metric: Any, family: Family) -> None:
        self.metric = metric
        self.bounds = tuple(float(b) for b in family.buckets) if family.kind == "histogram" else None
        self.children: dict[tuple[str, ...], Any] = {}

    def get(self, *labels: str) -> Any:
        child = self.children.get(labels)
        if child is None:
            metric = self.metric.labels(*labels) if labels else self.metric
            child = self.children[labels] = (_Count(metric) if self.bounds is None
                                             else _Hist(metric, self.bounds))
        return child

    def flush(self) -> None:
        for child in list(self.children.values()):
            child.flush()


class _Series:
    """The children of one (endpoint, model, provider, stream) combination,
    resolved once: a request then touches no label machinery at all."""

    __slots__ = ("requests", "duration", "ttft", "overhead", "streams", "stream_duration", "chunks", "tps",
                 "input", "output", "cached", "cache_write", "reasoning", "input_hist", "output_hist", "cost",
                 "cost_hist", "unpriced", "upstream", "body", "attempts", "attempt")

    def __init__(self, f: dict[str, _Family], endpoint: str, model: str, provider: str, stream: bool) -> None:
        # Only the series this kind of request can move: a stream's for streams, the
        # upstream's and the tokens' when something answered.
        self.duration = f["portway_request_duration_seconds"].get(endpoint, model, provider)
        self.overhead = f["portway_gateway_overhead_seconds"].get(endpoint, "true" if stream else "false")
        self.body = f["portway_request_body_bytes"].get(endpoint)
        if stream:
            self.ttft = f["portway_time_to_first_token_seconds"].get(endpoint, model, provider)
            self.streams = f["portway_streams"].get(endpoint, model, provider)
            self.stream_duration = f["portway_stream_duration_seconds"].get(model, provider)
            self.chunks = f["portway_stream_chunks"].get(model, provider)
        if provider in ("none", "cache"):
            return
        self.upstream = f["portway_upstream_duration_seconds"].get(provider)
        self.tps = f["portway_output_tokens_per_second"].get(model, provider)
        self.input = f["portway_input_tokens"].get(model, provider)
        self.output = f["portway_output_tokens"].get(model, provider)
        self.cached = f["portway_cached_input_tokens"].get(model, provider)
        self.cache_write = f["portway_cache_write_tokens"].get(model, provider)
        self.reasoning = f["portway_reasoning_tokens"].get(model, provider)
        self.input_hist = f["portway_request_input_tokens"].get(model)
        self.output_hist = f["portway_request_output_tokens"].get(model)
        self.cost = f["portway_cost_usd"].get(model, provider)
        self.cost_hist = f["portway_request_cost_usd"].get(model)
        self.unpriced = f["portway_unpriced_requests"].get(model, provider)
        self.attempts = f["portway_request_attempts"].get(endpoint)
        self.attempt = f["portway_upstream_attempts"].get(provider)


class Metrics:
    """The registry and the request-path update of one gateway."""

    def __init__(self, gateway: Any, config: Any) -> None:
        self.gateway = gateway
        self.config = config
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry(auto_describe=False)
        self.m: dict[str, Any] = {family.name: _make(family, self.registry) for family in FAMILIES}
        #: The request path's accumulators, for the families it updates.
        self.f: dict[str, _Family] = {family.name: _Family(self.m[family.name], family) for family in FAMILIES
                                      if family.source == "request"}
        if not self.multiprocess:
            prometheus_client.ProcessCollector(registry=self.registry)
            prometheus_client.PlatformCollector(registry=self.registry)
            prometheus_client.GCCollector(registry=self.registry)
        self._series: dict[tuple[str, str, str, bool], _Series] = {}
        self._requests: dict[tuple[str, str, str, int], _Count] = {}
        #: Model names that may stand as a label (everything else is 'other').
        self.model_names = self._model_names(gateway)
        self._last: dict[Any, float] = {}  # sampled counters: the value last added
        #: Whether portway-routing serves this gateway (its breakers and queues are read).
        self._routing = any(info.name == "routing" and info.enabled and not info.error for info in gateway.plugins)
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
        """One finished request: plain additions, flushed to the registry at the next refresh."""
        f = self.f
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
            requests = self._requests[key] = f["portway_requests"].get(endpoint, model, provider, str(status))
        requests.value += 1
        skey = (endpoint, model, provider, stream)
        series = self._series.get(skey)
        if series is None:
            series = self._series[skey] = _Series(f, endpoint, model, provider, stream)
        upstream = target is not None and ctx.attempts > 0

        latency = ctx.latency
        if latency is not None:
            series.duration.observe(latency)
            if upstream:
                series.upstream.observe(ctx.upstream_wait)
            series.overhead.observe(max(latency - ctx.upstream_wait, 0.0))
        if ctx.body_bytes is not None:
            series.body.observe(ctx.body_bytes)

        if status >= 400:
            if status == 499:
                f["portway_client_disconnects"].get(endpoint).value += 1
            else:
                error = ctx.error
                kind = getattr(error, "kind", None) or "internal"
                f["portway_request_errors"].get(endpoint, kind).value += 1
                if ctx.first_token_at is not None:
                    f["portway_stream_errors"].get(provider, kind).value += 1
                if getattr(error, "code", None) == "guardrail_denied":
                    f["portway_guardrail_blocked_requests"].get(endpoint).value += 1

        first = ctx.first_token_at
        if stream:
            series.streams.value += 1
            series.chunks.observe(ctx.chunks)
            if first is not None:
                series.ttft.observe(first - ctx.started)
                if ctx.finished_at is not None:
                    series.stream_duration.observe(ctx.finished_at - first)

        if upstream:
            usage = ctx.usage
            if usage:
                self._usage(series, usage, ctx, first)
                cost = ctx.cost
                if cost is not None:
                    series.cost.value += cost
                    series.cost_hist.observe(cost)
                else:
                    series.unpriced.value += 1
            self._attempts(ctx, series, model)
        cache_status = ctx.cache_status
        if cache_status:
            f["portway_cache_requests"].get(endpoint, cache_status).value += 1
        verdicts = ctx.verdicts
        if verdicts:
            for verdict in verdicts:
                if isinstance(verdict, dict):
                    f["portway_guardrail_verdicts"].get(str(verdict.get("check")), str(verdict.get("action")),
                                                        str(verdict.get("stage"))).value += 1

    def _usage(self, series: _Series, usage: dict[str, Any], ctx: Any, first: float | None) -> None:
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if type(prompt) is int and prompt >= 0:
            series.input.value += prompt
            series.input_hist.observe(prompt)
        if type(completion) is int and completion >= 0:
            series.output.value += completion
            series.output_hist.observe(completion)
            end = ctx.finished_at
            if completion and first is not None and end is not None and end > first:
                series.tps.observe(completion / (end - first))
            elif completion and first is None and ctx.upstream_wait > 0:
                series.tps.observe(completion / ctx.upstream_wait)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached = details.get("cached_tokens")
            if type(cached) is int and cached > 0:
                series.cached.value += cached
            written = details.get("cache_write_tokens")
            if type(written) is int and written > 0:
                series.cache_write.value += written
        out = usage.get("completion_tokens_details")
        if isinstance(out, dict):
            reasoning = out.get("reasoning_tokens")
            if type(reasoning) is int and reasoning > 0:
                series.reasoning.value += reasoning

    def _attempts(self, ctx: Any, series: _Series, model: str) -> None:
        series.attempts.observe(ctx.attempts)
        failures = ctx.failures
        if not failures and ctx.attempts == 1:
            series.attempt.value += 1  # the common case: one try, and it answered
            return
        f = self.f
        tried = [name for name, _ in failures]
        if len(tried) < ctx.attempts:
            tried.append(ctx.target.name)  # the last attempt: it answered, or failed after its stream started
        for name in tried:
            f["portway_upstream_attempts"].get(name.partition("/")[0]).value += 1
        for name, why in failures:
            f["portway_upstream_failures"].get(name.partition("/")[0], why.partition(" ")[0]).value += 1
        for before, after in zip(tried, tried[1:], strict=False):
            if before == after:
                f["portway_retries"].get(before.partition("/")[0]).value += 1
            else:
                f["portway_fallbacks"].get(model).value += 1

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
        for family in self.f.values():
            family.flush()
        m["portway_requests_in_flight"].set(getattr(gateway, "in_flight", 0))
        for (plugin, hook), stats in list(gateway.hooks.stats.items()):
            if hook not in REQUEST_PATH_HOOKS:
                continue
            self._add(("calls", plugin, hook), stats.calls, m["portway_hook_calls"].labels(plugin, hook))
            self._add(("seconds", plugin, hook), stats.seconds, m["portway_hook_duration_seconds"].labels(plugin, hook))
            self._add(("errors", plugin, hook), stats.errors, m["portway_hook_errors"].labels(plugin, hook))
        for name, provider in gateway.providers.items():
            try:
                http = provider.http
            except PortwayError:  # not started (or a provider without a pool)
                continue
            in_use = http.connections_in_use
            if in_use is not None:
                m["portway_upstream_connections_in_use"].labels(name).set(in_use)
            m["portway_upstream_streams_draining"].labels(name).set(http.draining)
        if self._routing:
            self._breakers(gateway)
            self._queues(gateway)
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

    def _queues(self, gateway: Any) -> None:
        """portway-routing's limiters (``state_of(gateway)[1]``: a provider's or a
        target's ``max_concurrency`` and who waits for a slot)."""
        try:
            from portway_routing import state_of
        except ImportError:
            return
        limiters = state_of(gateway)[1]
        m = self.m
        for limiter in (*limiters.by_target.values(), *limiters.by_provider.values()):
            name = limiter.name
            m["portway_concurrency_limit"].labels(name).set(limiter.limit)
            m["portway_concurrency_in_use"].labels(name).set(limiter.active)
            m["portway_queue_depth"].labels(name).set(limiter.waiting)
            self._add(("waited", name), limiter.waited, m["portway_queue_wait_seconds"].labels(name))
            self._add(("admitted", name), limiter.admitted_after_wait, m["portway_queue_waited_requests"].labels(name))
            self._add(("shed", name), limiter.shed, m["portway_queue_rejections"].labels(name))

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

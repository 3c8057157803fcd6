"""The access log: one line per request, on the ``portway.access`` logger.

A default plugin like the router and the retry policy.  It runs in
``request_finished`` (synchronous, after the response went out), where it
only keeps a tuple of the request's figures: every ``FLUSH_SECONDS`` (or
every ``FLUSH_AT`` requests) the lines are rendered together and handed to
the log writer as one batch, one write (see :mod:`portway.logs`).  A log
record per request — build, copy, queue, format, write — cost a busy
gateway about a tenth of its throughput; a batch costs a few microseconds
a line.  When Portway's own log set-up is not in use (an app embedding the
gateway, tests), each request is an ordinary ``logging`` record instead.

``server.access_log: false`` or ``portway serve --no-access-log`` turns it
off, and so does a log level above ``info``.  Text line::

    2026-01-31 12:00:00.123 INFO portway.access: req_9f3c… chat.completions model=fast -> oai/gpt-4o-mini 200 182.4ms ttft=95.1ms attempts=1 cost=0.000412

``cost`` is the response's cost in USD from the model catalog, ``unknown``
for a model the catalog has no price for (docs/catalog.md).  With a cache
(docs/caching.md), ``cache=hit|semantic-hit|miss|bypass`` follows, and a hit
adds ``saved=`` (what the answer cost when it was paid for).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from portway import logs
from portway.catalog import format_cost
from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "observability"

log = logging.getLogger("portway.access")

FLUSH_SECONDS = 0.2
FLUSH_AT = 512

#: The fields of a line, in order (the JSON format's keys, after ts/level/logger/message).
FIELDS = ("request_id", "endpoint", "model", "provider", "status", "latency_ms", "ttft_ms", "attempts", "stream",
          "key_id", "error", "cost_usd", "cache", "cost_saved_usd")


def _printable(text: str) -> str:
    """Client text (a model name) cannot break a log line or forge one."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _message(values: tuple[Any, ...]) -> str:
    request_id, endpoint, model, served, status, latency, ttft, attempts, _, _, error, cost, cache, saved = values
    return (f"{request_id} {endpoint} model={model} -> {served} {status} {latency}ms"
            f"{f' ttft={ttft}ms' if ttft is not None else ''} attempts={attempts}"
            f" cost={'unknown' if cost is None else format_cost(cost)}{f' error={error}' if error else ''}"
            f"{f' cache={cache}' if cache else ''}{f' saved={format_cost(saved)}' if saved is not None else ''}")


def _values(ctx: Any) -> tuple[Any, ...]:
    target = ctx.target
    served = f"{target.provider.name}/{target.model}" if target is not None else ("cache" if ctx.cached else "-")
    latency = ctx.latency
    ttft = ctx.time_to_first_token
    model = ctx.model if isinstance(ctx.model, str) else repr(ctx.model)
    error = getattr(ctx.error, "kind", "internal") if ctx.error is not None else None
    return (ctx.request_id, ctx.endpoint, _printable(model), _printable(served), ctx.status,
            round(latency * 1000, 1) if latency is not None else None,
            round(ttft * 1000, 1) if ttft is not None else None, ctx.attempts, ctx.stream, ctx.key_id, error, ctx.cost,
            ctx.cache_status, ctx.cost_saved)


class _Batch:
    """The lines of one gateway waiting to be written."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, tuple[Any, ...]]] = []
        self.stamps = logs.Stamps()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, values: tuple[Any, ...]) -> None:
        self.pending.append((time.time(), values))
        if len(self.pending) >= FLUSH_AT:
            self.flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, []
        log_format = logs.active_format()
        if not pending or log_format is None:
            return
        json = log_format == "json"  # (a text line has no fields)
        logs.write_rendered([
            logs.render(log_format, self.stamps, created, "INFO", "portway.access", _message(values),
                        dict(zip(FIELDS, values, strict=True)) if json else None)
            for created, values in pending
        ])


_batches: weakref.WeakKeyDictionary[Any, _Batch] = weakref.WeakKeyDictionary()


@hookimpl
def startup(gateway: Any) -> None:
    _batches[gateway] = _Batch()


@hookimpl
def shutdown(gateway: Any) -> None:
    batch = _batches.pop(gateway, None)
    if batch is not None:
        batch.flush()


@hookimpl
def request_finished(ctx: Any) -> None:
    if not ctx.gateway.config.server.access_log or not log.isEnabledFor(logging.INFO):
        return
    values = _values(ctx)
    batch = _batches.get(ctx.gateway)
    if batch is not None and logs.active_format() is not None:
        batch.add(values)
    else:  # logging is the host's: an ordinary record
        log.info("%s", _message(values), extra=dict(zip(FIELDS, values, strict=True)))

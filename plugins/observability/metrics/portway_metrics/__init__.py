"""Prometheus metrics for Portway: ``GET /metrics`` (see docs/metrics.md).

On by default (the ``portway`` distribution depends on this one).  Every
finished request updates counters and histograms in-process
(``request_finished``: no I/O, no lock held for long); what the gateway and
other plugins count themselves (requests in flight, breakers, connection
pools, the request log's queue, hook calls) is read when scraped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from portway import hookimpl
from portway.endpoints.common import error_response, is_authenticated, request_id_of
from portway.errors import PortwayError
from portway_metrics.recorder import Metrics

PORTWAY_PLUGIN_KIND = "observability"

log = logging.getLogger("portway.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsConfig(BaseModel):
    """The ``metrics:`` section."""

    model_config = ConfigDict(extra="forbid")

    #: Serve ``GET /metrics`` without the master key (scrapers rarely send one).
    public: bool = True
    #: With several workers: how often each writes the values it samples (seconds).
    sample_interval: float = Field(default=5.0, gt=0)


#: Each started gateway's metrics (removed when it shuts down).
_metrics: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()


def metrics_of(gateway: Any) -> Metrics | None:
    """The gateway's :class:`Metrics` once it has started (None before)."""
    return _metrics.get(gateway)


@hookimpl
def register_config(register: Any) -> None:
    register("metrics", MetricsConfig)


@hookimpl
def register_routes(register: Any) -> None:
    # Public at the route; the endpoint checks the key itself when metrics.public is false
    # (register_routes runs before the config could decide).
    register("/metrics", metrics_endpoint, methods=["GET"], public=True)


@hookimpl
async def startup(gateway: Any) -> None:
    config: MetricsConfig = gateway.plugin_config["metrics"]
    metrics = Metrics(gateway, config)
    _metrics[gateway] = metrics
    if metrics.multiprocess:
        metrics.sampler = asyncio.get_running_loop().create_task(_sample(metrics, config.sample_interval))


@hookimpl
async def shutdown(gateway: Any) -> None:
    metrics = metrics_of(gateway)
    if metrics is None:
        return
    sampler = getattr(metrics, "sampler", None)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    metrics.close()
    _metrics.pop(gateway, None)


@hookimpl
def request_finished(ctx: Any) -> None:
    metrics = metrics_of(ctx.gateway)
    if metrics is not None:
        metrics.finished(ctx)


async def metrics_endpoint(request: Request) -> Response:
    gateway = request.app.state.gateway
    if not gateway.plugin_config["metrics"].public and not is_authenticated(gateway, request):
        error = PortwayError("GET /metrics needs the master key (metrics.public is false)",
                             kind="authentication", code="invalid_api_key")
        return error_response(error, "openai", request_id_of(request))
    metrics = metrics_of(gateway)
    if metrics is None:
        return error_response(PortwayError("metrics are not started", kind="unavailable"), "openai",
                              request_id_of(request))
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)


async def _sample(metrics: Metrics, interval: float) -> None:
    """With several workers: write this worker's sampled values regularly,
    so a scrape answered by another worker sees them."""
    while True:
        await asyncio.sleep(interval)
        try:
            metrics.refresh()
        except Exception:  # a plugin's figures changed shape: the next round tries again
            log.exception("sampling metrics failed")

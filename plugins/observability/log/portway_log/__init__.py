"""Portway's request log (issue 13), as a plugin the core's install pulls in.

One record per request, written to SQLite (the default, in the data
directory) or PostgreSQL by a background task (:mod:`portway_log.sink`),
read back through ``/admin/logs`` and ``/admin/analytics``
(:mod:`portway_log.api`), with feedback at ``POST /v1/feedback`` and
``portway logs tail|show`` on the terminal (:mod:`portway_log.cli`).
``store: false`` turns it off.  See docs/observability.md.
"""

from __future__ import annotations

import weakref
from typing import Any

from portway import hookimpl
from portway.stores.sql import StoreConfig
from portway_log import api
from portway_log.config import LogConfig
from portway_log.sink import LogSink

PORTWAY_PLUGIN_KIND = "observability"

_sinks: weakref.WeakKeyDictionary[Any, LogSink] = weakref.WeakKeyDictionary()


def sink_of(gateway: Any) -> LogSink | None:
    """The running sink of ``gateway`` (None when the log is off or not
    started): its ``queue_depth``, ``dropped``, … are this process's figures
    (see :mod:`portway_log.sink`), for a metrics plugin to read."""
    return _sinks.get(gateway)


class _Bodies:
    """Keeps each answer for the record; registered (``register_request_hooks``)
    only when bodies are logged, so that otherwise no stream is assembled for it."""

    @hookimpl
    def post_response(self, ctx: Any, response: Any) -> None:
        ctx.metadata["log.response"] = response


@hookimpl
def register_config(register: Any) -> None:
    register("store", StoreConfig)
    register("log", LogConfig)


@hookimpl
def register_request_hooks(gateway: Any, register: Any) -> None:
    if gateway.plugin_config["store"].enabled and gateway.plugin_config["log"].log_bodies != "off":
        register("log.bodies", _Bodies())


@hookimpl
def register_routes(register: Any) -> None:
    register("/admin/logs", api.endpoint(sink_of, api.list_logs), methods=["GET"])
    register("/admin/logs", api.endpoint(sink_of, api.delete_logs), methods=["DELETE"])
    register("/admin/logs/stats", api.endpoint(sink_of, api.stats), methods=["GET"])
    register("/admin/logs/{request_id}", api.endpoint(sink_of, api.one_log), methods=["GET"])
    register("/admin/analytics", api.endpoint(sink_of, api.analytics), methods=["GET"])
    register("/v1/feedback", api.endpoint(sink_of, api.feedback), methods=["POST"])


@hookimpl
def register_commands(register: Any) -> None:
    from portway_log import cli

    register("logs", cli.run, help="the request log: tail it, show one request", arguments=cli.arguments)


@hookimpl
def startup(gateway: Any) -> None:
    url = gateway.plugin_config["store"].resolved_url()
    if url is None:
        return  # store: false
    config: LogConfig = gateway.plugin_config["log"]
    sink = LogSink(url, config)
    sink.start()
    _sinks[gateway] = sink


@hookimpl
async def shutdown(gateway: Any) -> None:
    sink = _sinks.pop(gateway, None)
    if sink is not None:
        await sink.stop()


@hookimpl
def request_finished(ctx: Any) -> None:
    sink = _sinks.get(ctx.gateway)
    if sink is not None:
        sink.add(ctx)

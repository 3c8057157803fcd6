"""The access log: one line per request, to the ``portway.access`` logger.

A default plugin like the router and the retry policy.  It runs in
``request_finished`` (synchronous, after the response went out) and only
builds a log record; ``portway serve`` hands records to a queue that a
background thread formats and writes (:mod:`portway.logs`), so a slow
terminal or disk never holds up a request.  ``server.access_log: false`` or
``portway serve --no-access-log`` turns it off; ``--log-format json`` makes
each line a JSON object whose fields are the ``extra`` below.

Text line::

    req_9f3c… chat.completions model=fast -> oai/gpt-4o-mini 200 182.4ms ttft=95.1ms attempts=1
"""

from __future__ import annotations

import logging
from typing import Any

from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "observability"

log = logging.getLogger("portway.access")


def _printable(text: str) -> str:
    """Client text (a model name) cannot break a log line or forge one."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


@hookimpl
def request_finished(ctx: Any) -> None:
    if not log.isEnabledFor(logging.INFO) or not ctx.gateway.config.server.access_log:
        return
    target = ctx.target
    served = f"{target.provider.name}/{target.model}" if target is not None else ("cache" if ctx.cached else "-")
    latency = round(ctx.latency * 1000, 1) if ctx.latency is not None else None
    ttft = ctx.time_to_first_token
    ttft = round(ttft * 1000, 1) if ttft is not None else None
    model = _printable(ctx.model if isinstance(ctx.model, str) else repr(ctx.model))
    served = _printable(served)
    error = getattr(ctx.error, "kind", "internal") if ctx.error is not None else None
    log.info(
        "%s %s model=%s -> %s %s %sms%s attempts=%d%s",
        ctx.request_id, ctx.endpoint, model, served, ctx.status, latency,
        f" ttft={ttft}ms" if ttft is not None else "", ctx.attempts, f" error={error}" if error else "",
        extra={"request_id": ctx.request_id, "endpoint": ctx.endpoint, "model": model, "provider": served,
               "status": ctx.status, "latency_ms": latency, "ttft_ms": ttft, "attempts": ctx.attempts,
               "stream": ctx.stream, "key_id": ctx.key_id, "error": error},
    )

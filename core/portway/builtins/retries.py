"""The default failure policy.

Retryable failures (rate limit, overload, server error, timeout, broken
connection) are retried on the same target up to the model's ``retries``
(or ``routing.retries``), then fall back to the next configured target.
A full connection pool (``pool_exhausted``) is never retried on the same
target, which would only wait for the same pool again, but may fall back.
A request a target cannot serve as asked (a 400 with code ``unsupported``:
a parameter or a capability it lacks, said before anything was sent) falls
back to the next target, which may serve it.  Anything else (bad request,
auth, content filter) goes straight to the client: another attempt would
fail the same way.
"""

from __future__ import annotations

from typing import Any

from portway.errors import FALLBACK_ONLY_KINDS
from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "router"


@hookimpl(trylast=True)
def on_error(ctx: Any, error: Any, candidates: list[Any]) -> str:
    if not getattr(error, "retryable", False):
        if getattr(error, "code", None) == "unsupported" and len(candidates) > 1:
            return "fallback"
        return "raise"
    if error.kind not in FALLBACK_ONLY_KINDS and \
            ctx.metadata.get("retries_on_target", 0) < ctx.metadata.get("retry_limit", 0):
        return "retry"
    return "fallback" if len(candidates) > 1 else "raise"

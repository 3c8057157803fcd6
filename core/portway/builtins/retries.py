"""The default failure policy.

Retryable failures (rate limit, overload, server error, timeout, broken
connection) are retried on the same target until the alias's
``retry.attempts`` (or ``routing.retry``'s) are used up, when the status is
one of ``retry.on_status`` (a timeout or a broken connection, which got no
upstream answer, always is) and the upstream's ``Retry-After`` asks for no
longer than ``retry.backoff.max``; then they fall back to the next
configured target.
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
from portway.gateway import retry_after_seconds
from portway.hookspecs import hookimpl

PORTWAY_PLUGIN_KIND = "router"

#: Failures with no upstream status of their own (the gateway's 504 and 502): retried whatever ``on_status`` says.
UNANSWERED = frozenset({"timeout", "connection"})


@hookimpl(trylast=True)
def on_error(ctx: Any, error: Any, candidates: list[Any]) -> str:
    if not getattr(error, "retryable", False):
        if getattr(error, "code", None) == "unsupported" and len(candidates) > 1:
            return "fallback"
        return "raise"
    retry = ctx.policy.retry if ctx.policy is not None else None
    if retry is not None and error.kind not in FALLBACK_ONLY_KINDS \
            and ctx.metadata.get("retries_on_target", 0) + 1 < retry.attempts \
            and (error.kind in UNANSWERED or error.status in retry.on_status):
        asked = retry_after_seconds(getattr(error, "retry_after", None))
        if asked is None or asked <= retry.backoff.max:
            return "retry"
    return "fallback" if len(candidates) > 1 else "raise"

"""One request as a log record.

:func:`capture` runs in ``request_finished`` for every request, so it only
reads the context into a tuple (references, no copies, no serialisation);
:func:`row` turns that into the table's columns on the writer task.
"""

from __future__ import annotations

import re
import time
from typing import Any

from portway import serialization
from portway.guardrails import luhn

#: The columns of ``log_requests``, in :func:`row`'s order.
COLUMNS = (
    "id", "request_id", "trace_id", "time", "logged_at", "endpoint", "client_format", "stream", "key_id", "tags", "model",
    "alias", "provider", "provider_model", "attempts", "failures", "status", "error_kind", "input_tokens",
    "output_tokens", "cached_tokens", "reasoning_tokens", "cost", "latency_ms", "ttft_ms", "output_tokens_per_s",
    "cache_status", "verdicts", "request_body", "response_body", "body_truncated",
)

#: The columns holding JSON text, decoded for the API.
JSON_COLUMNS = ("tags", "failures", "verdicts")


def capture(ctx: Any, bodies: bool, held: int = 0, skipped: bool = False) -> tuple[Any, ...]:
    """What the record needs from ``ctx``, taken now (the context is not
    touched again after ``request_finished``); ``held``: the bytes of body
    the queue counts for it, ``skipped``: bodies were wanted but left out."""
    target = ctx.target
    error = ctx.error
    route = ctx.route
    body = None
    if bodies:
        body = ctx.canonical if ctx.canonical is not None else getattr(ctx.native, "body", None)
    return (
        time.time(), ctx.request_id, ctx.trace_id, ctx.endpoint, ctx.client_format, ctx.stream, ctx.key_id,
        ctx.tags, ctx.model, route.name if route is not None else None,
        target.provider.name if target is not None else None, target.model if target is not None else None,
        ctx.attempts, tuple(ctx.failures), ctx.status,
        (getattr(error, "kind", None) or "internal") if error is not None else None,
        ctx.usage, ctx.cost, ctx.latency, ctx.time_to_first_token,
        ctx.cache_status if ctx.cache_status is not None else ("hit" if ctx.cached else None),
        ctx.verdicts, body, ctx.metadata.get("log.response") if bodies else None, held, skipped,
    )


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def tokens(usage: Any) -> tuple[int | None, int | None, int | None, int | None]:
    """(input, output, cached, reasoning) from an OpenAI-shaped usage."""
    if not isinstance(usage, dict):
        return None, None, None, None
    prompt = usage.get("prompt_tokens_details")
    completion = usage.get("completion_tokens_details")
    return (
        _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")),
        _int(prompt.get("cached_tokens")) if isinstance(prompt, dict) else None,
        _int(completion.get("reasoning_tokens")) if isinstance(completion, dict) else None,
    )


def row(record_id: str, logged_at: float, values: tuple[Any, ...], mode: str, cap: int) -> tuple[Any, ...]:
    """The table row of a captured record, written at ``logged_at`` (``mode``: ``off``, ``full`` or ``redacted``)."""
    (now, request_id, trace_id, endpoint, client_format, stream, key_id, tags, model, alias, provider,
     provider_model, attempts, failures, status, error_kind, usage, cost, latency, ttft, cache_status, verdicts,
     request_body, response_body, _held, skipped) = values
    input_tokens, output_tokens, cached_tokens, reasoning_tokens = tokens(usage)
    started = now - latency if latency is not None else now
    speed = None
    if output_tokens and latency:
        # Generation speed: from the first token on for a stream, the whole answer otherwise.
        span = latency - ttft if stream and ttft is not None and latency > ttft else latency
        speed = output_tokens / span if span > 0 else None
    truncated = skipped  # bodies left out whole (the queue's byte budget) count as cut
    texts: list[str | None] = [None, None]
    if mode != "off":
        for i, body in enumerate((request_body, response_body)):
            texts[i], cut = body_text(body, mode, cap)
            truncated = truncated or cut
    return (
        record_id, request_id, trace_id, started, logged_at, endpoint, client_format, 1 if stream else 0, key_id,
        _json(tags) if tags else None, model, alias, provider, provider_model, attempts,
        _json([{"target": name, "reason": why} for name, why in failures]) if failures else None,
        status, error_kind, input_tokens, output_tokens, cached_tokens, reasoning_tokens,
        float(cost) if cost is not None else None,
        latency * 1000 if latency is not None else None, ttft * 1000 if ttft is not None else None, speed,
        cache_status, _json(list(verdicts)) if verdicts else None, texts[0], texts[1], 1 if truncated else 0,
    )


def _json(value: Any) -> str:
    return serialization.dumps(value).decode("utf-8")


def body_text(body: Any, mode: str, cap: int) -> tuple[str | None, bool]:
    """A body as stored: JSON text, redacted in ``redacted`` mode, cut to ``cap`` characters."""
    if body is None or mode == "off":
        return None, False
    try:
        text = _json(body)
    except TypeError:
        text = repr(body)
    if mode == "redacted":
        text = redact(text)
    if len(text) > cap:
        return text[:cap], True
    return text, False


# -- redaction -------------------------------------------------------------------

#: What looks like a credential: provider key prefixes, bearer tokens, AWS key ids.
_KEY = re.compile(
    r"\b(?:sk|pk|rk|pw|sess|key|api|token)[-_][A-Za-z0-9_\-]{16,}"
    r"|\bsk-ant-[A-Za-z0-9_\-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abpr]-[A-Za-z0-9\-]{10,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"\b\d(?:[ \-]?\d){12,18}\b")


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", match.group(0))
    return "[REDACTED:card]" if luhn(digits) else match.group(0)


def redact(text: str) -> str:
    """``text`` with API-key-like strings, emails and card numbers (13 to 19
    digits passing the Luhn check) replaced by ``[REDACTED:<what>]``."""
    text = _KEY.sub("[REDACTED:key]", text)
    text = _EMAIL.sub("[REDACTED:email]", text)
    return _CARD.sub(_card, text)

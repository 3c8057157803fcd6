"""Errors as values the router can reason about.

Every failure on the request path becomes a :class:`PortwayError` with a
``kind`` (rate limit, auth, server error, ...).  The endpoint renders it in the
shape the client's API expects: OpenAI's ``{"error": {...}}`` or Anthropic's
``{"type": "error", "error": {...}}``.  Nothing here ever carries a traceback
or a credential to the client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# kind -> (default HTTP status, OpenAI error type, Anthropic error type)
KINDS: dict[str, tuple[int, str, str]] = {
    "bad_request": (400, "invalid_request_error", "invalid_request_error"),
    "authentication": (401, "authentication_error", "authentication_error"),
    "billing": (402, "insufficient_quota", "billing_error"),
    "permission": (403, "permission_error", "permission_error"),
    "not_found": (404, "not_found_error", "not_found_error"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "context_length": (400, "invalid_request_error", "invalid_request_error"),
    "content_filter": (400, "invalid_request_error", "invalid_request_error"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_error"),
    "server_error": (500, "api_error", "api_error"),
    "connection": (502, "api_error", "api_error"),
    "unavailable": (503, "api_error", "api_error"),
    # The gateway's own connection pool to a provider is full: its overload, not the provider's.
    "pool_exhausted": (503, "api_error", "api_error"),
    "timeout": (504, "timeout_error", "timeout_error"),
    "overloaded": (529, "overloaded_error", "overloaded_error"),
}

# Kinds worth another attempt, on the same target or the next one.
RETRYABLE_KINDS = frozenset({"rate_limit", "server_error", "connection", "unavailable", "timeout", "overloaded",
                             "pool_exhausted"})

# Retryable kinds that another attempt on the same target cannot fix (it
# would wait for the same full pool again): worth only a fallback.
FALLBACK_ONLY_KINDS = frozenset({"pool_exhausted"})


def is_error_status(status: int) -> bool:
    """Whether ``status`` can go to a client as an error: HTTP's status codes
    are three digits, 100-599 (RFC 9110, section 15), and an error is a 4xx
    or 5xx.  Unregistered ones in that range (Anthropic's 529, Cloudflare's
    52x) are fine; 999 or 600 would crash the server writing them."""
    return 400 <= status <= 599


def kind_for_status(status: int) -> str:
    """Classify an upstream HTTP status the way every provider SDK does.  A
    status that is no HTTP error at all (a 3xx, 999) is the upstream failing."""
    if not is_error_status(status):
        return "server_error"
    if status == 400 or status == 422:
        return "bad_request"
    if status == 401:
        return "authentication"
    if status == 402:
        return "billing"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status == 408 or status == 504:
        return "timeout"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit"
    if status == 503 or status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    return "bad_request"


class PortwayError(Exception):
    """A failure with a class, a status and a client-safe message."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "server_error",
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: str | None = None,
        provider: str | None = None,
        plugin: str | None = None,
    ) -> None:
        super().__init__(message)
        if kind not in KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        self.message = message
        self.kind = kind
        # Whatever an upstream or a plugin said, the client gets a status HTTP can carry.
        self.status = (status if is_error_status(status) else 502) if status else KINDS[kind][0]
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.provider = provider
        self.plugin = plugin

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": KINDS[self.kind][1],
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": KINDS[self.kind][2], "message": self.message}}

    def headers(self) -> dict[str, str]:
        return {"retry-after": self.retry_after} if self.retry_after else {}

    def __repr__(self) -> str:
        return f"PortwayError({self.kind}, {self.status}, {self.message!r})"


class ProviderError(PortwayError):
    """The upstream provider answered with an error (or could not be reached)."""


class ValidationFailed(PortwayError):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, kind="bad_request", param=param)


REDACTED = "[redacted]"

#: Shortest value redacted wherever it appears: shorter ones would match
#: ordinary words and numbers, and no real credential is that short.
MIN_SECRET_CHARS = 8
#: Fewest characters of a secret a masked echo must show (start and end
#: together) to count as that secret's echo.
MIN_MASKED_VISIBLE = 6

# A masked echo, as providers print a key they reject: a visible start, a
# mask (an ellipsis, or three or more dots or asterisks, in any mix) and a
# visible end, as one token: "sk-proj-****...****3456", "sk-SE...3456",
# "sk-WRQsP*****xQBt", "sk-…3456".  Key characters are base64url plus "+/=".
_KEY = r"A-Za-z0-9_\-+/="
_MASKED = re.compile(rf"(?<![{_KEY}])([{_KEY}]+)([.*]*\u2026[.*]*|[.*]{{3,}})([{_KEY}]+)(?![{_KEY}])")
_TAIL = re.compile(rf"[{_KEY}.*\u2026]+\Z")


def redact(text: str, secrets: Iterable[str], limit: int | None = None) -> str:
    """Remove every secret from text that may reach a client or a log.

    A secret of at least :data:`MIN_SECRET_CHARS` characters is replaced
    wherever it appears.  A masked echo of one is replaced too: a token made
    of a start of the secret, a mask (``…``, ``...``, ``***``) and an end of
    it, showing at least :data:`MIN_MASKED_VISIBLE` of its characters but not
    all of them.  A fragment on its own (``3456``, ``sk-``) is left alone.

    With ``limit``, the result is cut to ``limit`` characters, and only a
    head of ``text`` long enough for that is examined (a huge upstream page
    costs no more than a short one)."""
    values = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
    if limit is not None and values:
        # Room for a secret or echo that starts inside the limit; whatever the
        # head cuts in half at its end is dropped, so no part of it survives.
        head = limit + 2 * len(values[0]) + 64
        if len(text) > head:
            text = _TAIL.sub("", text[:head])
    for secret in values:  # longest first: "Bearer sk-x" before "sk-x"
        if secret in text:
            text = text.replace(secret, REDACTED)
    if values:

        def masked(match: re.Match[str]) -> str:
            start, end = match.group(1), match.group(3)
            shown = len(start) + len(end)
            for secret in values:
                if MIN_MASKED_VISIBLE <= shown < len(secret) and secret.startswith(start) and secret.endswith(end):
                    return REDACTED
            return match.group(0)

        text = _MASKED.sub(masked, text)
    return text if limit is None else text[:limit]


_TYPE_KINDS = {
    "invalid_request_error": "bad_request",
    "authentication_error": "authentication",
    "billing_error": "billing",
    "insufficient_quota": "billing",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "tokens": "rate_limit",
    "requests": "rate_limit",
    "api_error": "server_error",
    "server_error": "server_error",
    "timeout_error": "timeout",
    "overloaded_error": "overloaded",
    "context_length_exceeded": "context_length",
    "content_filter": "content_filter",
}


def kind_for_type(error_type: str | None, default: str = "server_error") -> str:
    """Classify a provider's error ``type``/``code`` string (OpenAI's and
    Anthropic's vocabularies; mid-stream errors carry no HTTP status)."""
    return _TYPE_KINDS.get(error_type or "", default)

"""Google's error body, ``{"error": {"code", "message", "status", "details"}}``
(google.rpc.Status; python-genai ``errors.APIError``), read defensively: it
may come wrapped in a one-element list, and its ``details`` carry the retry
hint (``google.rpc.RetryInfo``) and the reason (``google.rpc.ErrorInfo``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from portway import serialization

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_DURATION = re.compile(r"\A(\d+(?:\.\d+)?)s\Z")  # a protobuf Duration in JSON: "37s", "1.5s"


@dataclass(frozen=True, slots=True)
class GoogleError:
    message: str
    status: str | None  # RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ...
    reason: str | None  # ErrorInfo.reason: API_KEY_INVALID, ...
    retry_after: str | None  # whole seconds, rounded up, for a Retry-After header


def parse_google_error(content: bytes) -> GoogleError | None:
    """The error in ``content``, or ``None`` if it is not Google's shape."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) \
            or not (type(error.get("code")) is int or isinstance(error.get("status"), str)):
        return None  # not Google's (Claude on Vertex answers in Anthropic's shape)
    status = error.get("status") if isinstance(error.get("status"), str) else None
    reason = retry_after = None
    for detail in error.get("details") if isinstance(error.get("details"), list) else ():
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == RETRY_INFO:
            retry_after = _seconds(detail.get("retryDelay"))
        elif detail.get("@type") == ERROR_INFO and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
    return GoogleError(error["message"], status, reason, retry_after)


def _seconds(delay: Any) -> str | None:
    if not isinstance(delay, str):
        return None
    match = _DURATION.match(delay.strip())
    return str(math.ceil(float(match.group(1)))) if match else None


def is_context_overflow(message: str) -> bool:
    """Gemini's words for a prompt longer than the model's window ("The input
    token count (N) exceeds the maximum number of tokens allowed (M)")."""
    return "exceeds the maximum number of tokens" in message

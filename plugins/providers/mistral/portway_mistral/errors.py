"""Mistral's error bodies, read into (code, message).

The shapes seen from ``api.mistral.ai`` (all JSON):

- ``{"object": "error", "message": "...", "type": "invalid_request_error",
  "param": null, "code": "3280"}``: most errors; ``code`` is a numeric string
  (or a number, or null).
- a 422 for a body the schema refuses, with the pydantic details in
  ``message`` (as an object or a list) or at the top as ``detail``:
  ``{"object": "error", "message": {"detail": [{"type": "extra_forbidden",
  "loc": ["body", "max_completion_tokens"], "msg": "Extra inputs are not
  permitted", ...}]}, ...}``, and the SDK's ``HTTPValidationError``
  ``{"detail": [{"loc", "msg", "type"}]}``;
- from the API gateway in front, a 401 or 429 as ``{"message":
  "Unauthorized", "request_id": "..."}`` or ``{"detail": "Unauthorized"}``.
"""

from __future__ import annotations

from typing import Any

from portway import serialization
from portway.providers import Provider


def detail_text(detail: Any) -> str | None:
    """Pydantic validation details as one line: ``body.max_completion_tokens:
    Extra inputs are not permitted; ...``."""
    if isinstance(detail, str):
        return detail
    if not isinstance(detail, list):
        return None
    lines = []
    for item in detail:
        if not isinstance(item, dict):
            lines.append(str(item))
            continue
        loc = item.get("loc")
        where = ".".join(str(part) for part in loc) if isinstance(loc, list) else None
        msg = str(item.get("msg") or item.get("type") or item)
        lines.append(f"{where}: {msg}" if where else msg)
    return "; ".join(lines) or None


def _message_text(message: Any) -> str | None:
    if isinstance(message, str):
        # Some proxies put the validation details in as a JSON string.
        if message.startswith("{") and '"detail"' in message:
            try:
                parsed = serialization.loads(message)
            except serialization.JSONDecodeError:
                return message
            return _message_text(parsed) or message
        return message
    if isinstance(message, dict):
        return detail_text(message.get("detail")) or (str(message) if message else None)
    if isinstance(message, list):
        return detail_text(message)
    return None


def parse_error_body(content: bytes) -> tuple[str | None, str]:
    """(error code or type, message) of a Mistral error answer."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return Provider.parse_error_body(content)  # a proxy's text or HTML page, or JSON of another shape
    if isinstance(data.get("error"), dict):  # the OpenAI shape, should a proxy answer with it
        data = data["error"]
    message = _message_text(data.get("message")) or detail_text(data.get("detail")) or str(data)
    code = data.get("code")
    code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else None
    error_type = data.get("type") if isinstance(data.get("type"), str) else None
    return error_type or code, message

"""Error bodies in the FastAPI shape: ``{"detail": "<message>"}``, or for a
request that fails validation ``{"detail": [{"loc": [...], "msg": "..."}]}``.

Voyage AI answers so (voyageai-python, ``api_requestor.handle_error_response``
reads ``resp["detail"]``), and so does Jina AI (``{"detail": "[RID: …]
Failed to encode text"}``).  Any other body is read as the core reads it.
"""

from __future__ import annotations

from typing import Any

from portway import serialization
from portway.providers import Provider


def _located(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
    message = str(item.get("msg") or item)
    return f"{where}: {message}" if where else message


def parse_detail_error(content: bytes) -> tuple[str | None, str]:
    """(error type, message) of an error body; see the module docstring."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return Provider.parse_error_body(content)
    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        if isinstance(detail, str):
            return None, detail
        if isinstance(detail, list) and detail:
            return None, "; ".join(_located(item) for item in detail)
    return Provider.parse_error_body(content)


__all__ = ["parse_detail_error"]

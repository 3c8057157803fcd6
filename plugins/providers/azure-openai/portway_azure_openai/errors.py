"""Azure OpenAI's error bodies.

Azure answers in OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, with three differences this module reads:

- a prompt its content filters block is a 400 whose ``code`` is
  ``content_filter`` and whose ``innererror`` (``inner_error`` in the REST
  spec) has ``code: ResponsibleAIPolicyViolation`` and the per-category
  ``content_filter_result``; some deployments send only the inner code.
  Both become Portway's ``content_filter`` kind, with the categories that
  were filtered named in the message (the client's error body has no place
  for the inner object);
- gateway-level errors put the HTTP status in ``code`` as a string
  (``{"error": {"code": "429", "message": "Requests to the ChatCompletions_Create
  Operation ... exceeded token rate limit ..."}}``, ``"401"``): such a code
  says nothing the status does not, so it is not passed on as the code;
- Entra ID failures come from the API gateway in front of the service as
  ``{"statusCode": 401, "message": "..."}``, with no ``error`` wrapper.
"""

from __future__ import annotations

from typing import Any

from portway import serialization
from portway.providers import Provider

#: ``innererror.code`` of a content-filter refusal.
RAI_VIOLATION = "ResponsibleAIPolicyViolation"


def parse_azure_error(content: bytes) -> tuple[str | None, str]:
    """(code or type, message) of an Azure error body: ``content_filter``
    for a content-filter refusal (see the module docstring)."""
    code, message = Provider.parse_error_body(content)
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return code, message
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        filtered = content_filter_error(error)
        if filtered is not None:
            return "content_filter", filtered
        if code is not None and code.isdigit():
            error_type = error.get("type")
            code = error_type if isinstance(error_type, str) and error_type else None
    return code, message


def content_filter_error(error: Any) -> str | None:
    """The message for an error object (the value of ``"error"``) that is a
    content-filter refusal, naming the filtered categories; else None."""
    if not isinstance(error, dict):
        return None
    inner = error.get("innererror", error.get("inner_error"))
    inner = inner if isinstance(inner, dict) else {}
    if error.get("code") != "content_filter" and inner.get("code") != RAI_VIOLATION:
        return None
    message = str(error.get("message") or "the request was blocked by Azure's content filters")
    categories = filtered_categories(inner.get("content_filter_result", inner.get("content_filter_results")))
    return f"{message} (filtered: {', '.join(categories)})" if categories else message


def filtered_categories(results: Any) -> list[str]:
    """``["violence (high)", "jailbreak"]`` for the categories of a
    ``content_filter_result(s)`` object that have ``filtered: true``."""
    if not isinstance(results, dict):
        return []
    found = []
    for category, result in results.items():
        if isinstance(result, dict) and result.get("filtered") is True:
            severity = result.get("severity")
            found.append(f"{category} ({severity})" if isinstance(severity, str) else str(category))
    return found

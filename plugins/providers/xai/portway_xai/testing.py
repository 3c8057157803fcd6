"""A fake of xAI's Grok Chat Completions and Embeddings APIs.

Its rules come from xAI's documentation and its own errors, not from the
adapter:

- https://docs.x.ai/docs/guides/reasoning: reasoning models (``grok-3-mini``,
  ``grok-4`` but its ``non-reasoning`` variants, ``grok-code-fast``) refuse
  ``presencePenalty``, ``frequencyPenalty`` and ``stop``; only ``grok-3-mini``
  takes ``reasoning_effort`` (lobehub/lobe-chat dbcec3d, charmbracelet/catwalk#181:
  "Model does not support parameter reasoningEffort"); ``grok-3-mini`` returns
  its thinking as ``reasoning_content``;
- errors are ``{"code": "<gRPC status text>", "error": "<message>"}``, and a
  wrong or missing key is a **400** "Incorrect API key provided: xa***YA. You
  can obtain an API key from https://console.x.ai." (as xAI's users report it,
  e.g. continuedev/continue#10778).
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply

#: xAI's gRPC-style ``code`` text per status.
CODES = {400: "Client specified an invalid argument", 401: "Unauthenticated", 403: "Permission denied",
         404: "Some requested entity was not found", 429: "Some resource has been exhausted",
         500: "Internal error", 503: "The service is currently unavailable"}
CAMEL = {"presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty", "stop": "stop",
         "reasoning_effort": "reasoningEffort"}


def reasoning_model(model: str) -> bool:
    if model.startswith("grok-4"):
        return "non-reasoning" not in model
    return model.startswith(("grok-3-mini", "grok-code"))


class XAIAPI(OpenAIChatAPI):
    reasoning_field = "reasoning_content"

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        model = str(body.get("model"))
        unsupported = [key for key in ("presence_penalty", "frequency_penalty", "stop") if key in body] \
            if reasoning_model(model) else []
        if "reasoning_effort" in body and not model.startswith("grok-3-mini"):
            unsupported.append("reasoning_effort")
        if unsupported:
            return f"Model {model} does not support parameter {CAMEL[unsupported[0]]}.", unsupported[0]
        return super().check(body)

    def _refuse(self, request: RecordedRequest, status: int, message: str, param: str | None = None) -> Reply:
        if status == 401:  # xAI says so with a 400
            key = request.headers.get("authorization", "").partition(" ")[2].strip()
            status, message = 400, (f"Incorrect API key provided: {key[:2]}***{key[-2:]}. You can obtain an API key "
                                    "from https://console.x.ai.")
        return super()._refuse(request, status, message, param)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"code": CODES.get(status, "Unknown"), "error": message}, status, headers)


__all__ = ["XAIAPI", "reasoning_model"]

"""A fake Model Studio (DashScope) OpenAI-compatible mode, with the rules of
its reference ("OpenAI compatible - Chat", "Deep thinking", "OpenAI
compatible - Embedding", "Status codes"):

- ``POST /compatible-mode/v1/chat/completions`` and ``.../embeddings``,
  the key as ``Authorization: Bearer``;
- a non-streamed request to a model that would think (``enable_thinking:
  true``, ``qwq-*``, ``*-thinking*``, an open-source ``qwen3-<n>b`` model
  without ``enable_thinking: false``) is a 400 ``invalid_parameter_error``
  ("parameter.enable_thinking must be set to false for non-streaming
  calls");
- ``n`` at most 4; ``tool_choice`` "auto", "none" or a named function; the
  roles system, user, assistant, tool; ``user`` is not a parameter;
- the reasoning comes back as ``reasoning_content``;
- embeddings take ``encoding_format: float`` only;
- errors are ``{"error": {"code", "message", "param", "type"}, "request_id"}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step
from portway.testing.upstream import RecordedRequest, Reply, json_reply

PREFIX = "/compatible-mode/v1"
CODES = {400: "invalid_parameter_error", 401: "invalid_api_key", 403: "access_denied", 404: "model_not_found",
         429: "limit_requests", 500: "internal_error", 503: "service_unavailable"}
THINKS_BY_DEFAULT = re.compile(r"qwen3-\d+(\.\d+)?b(-a\d+b)?$")


class DashScopeAPI(OpenAIChatAPI):
    max_n = 4
    roles = frozenset({"system", "user", "assistant", "tool"})
    tool_choices = frozenset({"auto", "none", "named"})
    refused_params = frozenset({"user"})
    reasoning_field = "reasoning_content"

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        super().__init__(script, api_key=api_key, chat_path=PREFIX + "/chat/completions",
                         embeddings_path=PREFIX + "/embeddings")

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        model = str(body.get("model") or "")
        thinking = body.get("enable_thinking")
        always = model.startswith(("qwq-", "qvq-")) or "-thinking" in model
        if not body.get("stream") and (always or thinking is True or (
                thinking is None and THINKS_BY_DEFAULT.match(model))):
            return "parameter.enable_thinking must be set to false for non-streaming calls", "enable_thinking"
        return super().check(body)

    def _embeddings(self, request: RecordedRequest) -> Reply:
        body = self.authorized_body(request)
        if body is not None and body.get("encoding_format", "float") != "float":
            return self._refuse(request, 400, "The encoding_format only supports float.", "encoding_format")
        return super()._embeddings(request)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        error = {"code": CODES.get(status, "internal_error"), "param": param, "message": message,
                 "type": "invalid_request_error" if status < 500 else "server_error"}
        return json_reply({"error": error, "request_id": "00000000-fake-0000-0000-dashscope000"}, status, headers)


__all__ = ["DashScopeAPI"]

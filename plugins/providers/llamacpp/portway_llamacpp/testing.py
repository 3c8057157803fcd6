"""A fake ``llama-server``: OpenAI's Chat Completions and Embeddings as
llama.cpp serves them (see :class:`~portway.testing.openai_chat.OpenAIChatAPI`),
with its rules from ``tools/server/utils.hpp`` and ``server.cpp``:

- ``n`` must be 1 ("Only one completion choice is allowed");
- ``tool_choice`` is "auto", "none" or "required" (an object is not read);
- the chat template knows the roles system, user, assistant and tool;
- a reasoning model's thinking is ``reasoning_content``;
- errors are ``{"error": {"code": <status>, "message", "type"}}`` with
  llama.cpp's types (``format_error_response``: ``invalid_request_error``,
  ``authentication_error``, ``not_found_error``, ``server_error``,
  ``unavailable_error`` while a model loads);
- no key is asked unless the server was started with ``--api-key``
  (``api_key`` here), then ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 501: "not_supported_error", 503: "unavailable_error"}


class LlamaServerAPI(OpenAIChatAPI):
    max_n = 1
    roles = frozenset({"system", "user", "assistant", "tool"})
    tool_choices = frozenset({"auto", "none", "required"})
    reasoning_field = "reasoning_content"

    def authorize(self, request: RecordedRequest) -> str | None:
        # Started without --api-key: nothing is checked; with one, a bearer key.
        return None if self.api_key is None else super().authorize(request)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"code": status, "message": message,
                                     "type": ERROR_TYPES.get(status, "server_error")}}, status, headers)


__all__ = ["LlamaServerAPI"]

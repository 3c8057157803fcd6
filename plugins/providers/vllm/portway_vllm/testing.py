"""A fake ``vllm serve``: OpenAI's Chat Completions and Embeddings as vLLM
serves them (see :class:`~portway.testing.openai_chat.OpenAIChatAPI`), with
vLLM's own rules, from its docs and code:

- a model's reasoning comes back as ``reasoning`` in messages and deltas
  (vllm-project/vllm#27752; ``reasoning_content`` was removed in #33402),
  and an assistant message's ``reasoning_content`` is refused here (vLLM
  drops it silently, #38488: the fake makes that loss visible);
- errors are ``{"error": {"message", "type", "param", "code"}}`` with the
  status as an integer ``code`` and an exception name as ``type``
  (``ErrorResponse``/``ErrorInfo`` in ``vllm/entrypoints/openai/protocol.py``);
- no key is asked unless the server was started with ``--api-key``
  (``api_key`` here), then ``Authorization: Bearer <key>``, refused with
  a 401 ``{"error": "Unauthorized"}`` (``vllm/entrypoints/openai/api_server.py``).
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply

#: vLLM's error ``type`` per status (the names of its exceptions).
ERROR_TYPES = {400: "BadRequestError", 401: "Unauthorized", 403: "Forbidden", 404: "NotFoundError",
               429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}


class VLLMAPI(OpenAIChatAPI):
    reasoning_field = "reasoning"

    def authorize(self, request: RecordedRequest) -> str | None:
        # Started without --api-key: nothing is checked; with one, a bearer key.
        return None if self.api_key is None else super().authorize(request)

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        for index, message in enumerate(body.get("messages") or ()):
            if isinstance(message, dict) and message.get("role") == "assistant" and "reasoning_content" in message:
                return (f"messages[{index}].reasoning_content is not read by vLLM (send it as 'reasoning')",
                        f"messages.[{index}].reasoning_content")
        return super().check(body)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if status == 401:  # the --api-key middleware's own answer
            return json_reply({"error": message}, status, headers)
        return json_reply({"error": {"message": message, "type": ERROR_TYPES.get(status, "InternalServerError"),
                                     "param": param, "code": status}}, status, headers)


__all__ = ["VLLMAPI"]

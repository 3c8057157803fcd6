"""A fake of DeepInfra's OpenAI-compatible Chat Completions and Embeddings APIs.

Its rules come from DeepInfra's documentation, not from the adapter:

- https://docs.deepinfra.com/api-reference/openai-chat-completions-1: the
  request model (``max_tokens``; ``tool_choice`` a **string**; no
  ``max_completion_tokens``, ``logit_bias``, ``top_logprobs`` or
  ``parallel_tool_calls``, which the fake ignores as a pydantic model does),
  and validation errors as FastAPI's ``422 {"detail": [{"loc", "msg", "type"}]}``;
- https://docs.deepinfra.com/chat/overview: the roles are ``system``,
  ``user``, ``assistant`` (and ``tool``);
- a request without a valid token: ``403 {"detail": {"error": "Not
  authenticated"}}`` (as reported in XInTheDark/raycast-g4f#179);
- reasoning models answer ``reasoning_content``.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply


class DeepInfraAPI(OpenAIChatAPI):
    roles = frozenset({"system", "user", "assistant", "tool"})
    tool_choices = frozenset({"auto", "none", "required"})
    reasoning_field = "reasoning_content"

    def _refuse(self, request: RecordedRequest, status: int, message: str, param: str | None = None) -> Reply:
        if status == 401:
            self.refusals.append((request, 403, "Not authenticated"))
            return json_reply({"detail": {"error": "Not authenticated"}}, 403)
        return super()._refuse(request, status, message, param)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if status == 400 and param:  # a validation problem, as FastAPI reports it
            return json_reply({"detail": [{"loc": ["body", *param.split(".")], "msg": message,
                                           "type": "value_error"}]}, 422, headers)
        return json_reply({"detail": {"error": message}}, status, headers)


__all__ = ["DeepInfraAPI"]

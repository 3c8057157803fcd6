"""A fake of GroqCloud's Chat Completions API, as strict as Groq.

Its rules come from Groq's documentation, not from the adapter:

- https://console.groq.com/docs/openai ("Currently Unsupported OpenAI
  Features"): ``logprobs``, ``logit_bias``, ``top_logprobs`` and
  ``messages[].name`` are a 400 whenever they are supplied; ``n`` must be 1;
- Groq's request validation refuses any property it does not know on a
  message, in this wording: ``'messages.1' : for 'role:assistant' the
  following must be satisfied[('messages.1' : property 'reasoning_content'
  is unsupported)]`` (reported in janhq/jan#8136, NousResearch/hermes-agent#11089),
  and a system message whose content is not a string: ``('messages.0.content'
  : value must be a string)`` (OpenHands/OpenHands#4643);
- https://console.groq.com/docs/reasoning: with ``reasoning_format: parsed``
  (the default for models that reason) the text is ``message.reasoning``;
- the API has no ``/embeddings``; errors are ``{"error": {"message", "type"}}``
  with ``code`` where Groq gives one.
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import ERROR_TYPES, OpenAIChatAPI
from portway.testing.upstream import FakeUpstream, Reply, json_reply

#: The only keys Groq takes on a message, by role (its API reference).
MESSAGE_KEYS = {
    "system": {"role", "content"},
    "developer": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "reasoning"},
    "tool": {"role", "content", "tool_call_id"},
}


class GroqAPI(OpenAIChatAPI):
    refused_params = frozenset({"logprobs", "logit_bias", "top_logprobs"})
    max_n = 1
    string_content_roles = frozenset({"system"})
    reasoning_field = "reasoning"

    def install(self, upstream: FakeUpstream) -> GroqAPI:
        upstream.add(self.chat_path, self._chat)  # no embeddings route: Groq has none
        return self

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        for index, message in enumerate(body.get("messages") or ()):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            unknown = sorted(set(message) - MESSAGE_KEYS.get(role, set(message)))
            if unknown:
                where = f"messages.{index}"
                return (f"'{where}' : for 'role:{role}' the following must be satisfied"
                        f"[('{where}' : property '{unknown[0]}' is unsupported)]", where)
            if role in self.string_content_roles and not isinstance(message.get("content"), str):
                return (f"'messages.{index}' : for 'role:{role}' the following must be satisfied"
                        f"[('messages.{index}.content' : value must be a string)]", f"messages.{index}.content")
        return super().check(body)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        error: dict[str, Any] = {"message": message, "type": ERROR_TYPES.get(status, ("internal_server_error",))[0]}
        if status == 401:
            error["code"] = "invalid_api_key"
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": error}, status, headers)


__all__ = ["GroqAPI", "MESSAGE_KEYS"]

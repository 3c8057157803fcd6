"""A fake LM Studio server: OpenAI's Chat Completions and Embeddings with
LM Studio's rules (lmstudio-ai/docs: ``3_openai-compat/chat-completions.md``,
``structured-output.md``, ``api-changelog.md``):

- it reads only the parameters it documents; the OpenAI ones it does not
  (``max_completion_tokens``, ``n``, ``logprobs``, ``top_logprobs``, ``user``,
  ``parallel_tool_calls``) are refused here, so that an adapter that sends one
  (which LM Studio would ignore, changing the answer) fails its tests;
- ``response_format`` is ``text`` or ``json_schema``;
- ``tool_choice`` is "auto", "none" or "required";
- the prompt template knows system, user, assistant and tool;
- a reasoning model's thinking comes back as ``reasoning`` (gpt-oss);
- errors are ``{"error": "<message>"}`` (a string, as its server answers
  "Unexpected endpoint or method.");
- no key is asked unless authentication is on (``api_key`` here).
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply


class LMStudioAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens", "n", "logprobs", "top_logprobs", "user",
                                "parallel_tool_calls"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"text", "json_schema"})
    tool_choices = frozenset({"auto", "none", "required"})
    reasoning_field = "reasoning"

    def authorize(self, request: RecordedRequest) -> str | None:
        # Authentication off: any request is served; on: an API token as a bearer key.
        return None if self.api_key is None else super().authorize(request)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        return json_reply({"error": message}, status, {"retry-after": retry_after} if retry_after else {})


__all__ = ["LMStudioAPI"]

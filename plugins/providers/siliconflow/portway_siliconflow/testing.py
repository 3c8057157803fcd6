"""A fake SiliconFlow API, from its reference (docs.siliconflow.cn
``api-reference/chat-completions``, ``faqs/error-code``):

- the chat parameters it lists, and only those: OpenAI's
  ``max_completion_tokens``, ``seed``, ``presence_penalty``, ``logprobs``,
  ``logit_bias``, ``user`` and ``parallel_tool_calls`` are refused here
  (400 naming them);
- ``response_format`` ``text`` or ``json_object``; ``tool_choice`` "auto" or
  "none"; the roles system, user, assistant, tool;
- reasoning comes back as ``reasoning_content``;
- errors are ``{"code": <number>, "message", "data": null}``; a bad key is a
  401 with a bare text body.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import Reply, json_reply

#: SiliconFlow's business codes per status (20012: "Model does not exist").
CODES = {400: 20015, 403: 30001, 404: 20012, 429: 50603, 500: 50500, 503: 50505}


class SiliconFlowAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens", "seed", "presence_penalty", "logprobs", "top_logprobs",
                                "logit_bias", "user", "parallel_tool_calls"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"text", "json_object"})
    tool_choices = frozenset({"auto", "none"})
    reasoning_field = "reasoning_content"

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        if status == 401:
            return Reply(status=401, body=message.encode(), content_type="text/plain", headers=headers)
        return json_reply({"code": CODES.get(status, 50500), "message": message, "data": None}, status, headers)


__all__ = ["SiliconFlowAPI"]

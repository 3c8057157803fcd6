"""A fake Zhipu BigModel / Z.ai ``/api/paas/v4`` API, with the rules of the
official SDKs' request parameters (zhipuai ``chat/completions.py``: model,
request_id, user_id, do_sample, stream, temperature, top_p, max_tokens,
seed, messages, stop, tools, tool_choice, response_format, thinking) and of
docs.z.ai:

- any other OpenAI parameter is refused (400, code 1214 "Invalid parameter");
- ``stop`` is a single stop word; ``tool_choice`` is only "auto";
  ``response_format`` is ``text`` or ``json_object``;
- the roles are system, user, assistant, tool; messages carry no ``name``;
- streams carry the usage on the last content chunk (with the
  ``finish_reason``), and there is no ``stream_options``;
- the reasoning comes back as ``reasoning_content``;
- errors are ``{"error": {"code": "<business code>", "message"}}``
  (docs.z.ai/api-reference/api-code).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step, Turn
from portway.testing.upstream import Reply, json_reply

PREFIX = "/api/paas/v4"
CODES = {400: "1214", 401: "1002", 403: "1220", 404: "1211", 429: "1302", 500: "500", 503: "1305"}


class ZhipuAPI(OpenAIChatAPI):
    refused_params = frozenset({"n", "logprobs", "top_logprobs", "logit_bias", "frequency_penalty",
                                "presence_penalty", "parallel_tool_calls", "stream_options", "max_completion_tokens",
                                "user"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"text", "json_object"})
    tool_choices = frozenset({"auto"})
    reasoning_field = "reasoning_content"

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None) -> None:
        super().__init__(script, api_key=api_key, chat_path=PREFIX + "/chat/completions",
                         embeddings_path=PREFIX + "/embeddings")

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 1:
            return "Invalid stop parameter: only one stop word is supported", "stop"
        for index, message in enumerate(body.get("messages") or ()):
            if isinstance(message, dict) and "name" in message:
                return f"Invalid messages[{index}].name parameter", f"messages.[{index}].name"
        return super().check(body)

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        chunks = list(super().chunks(turn, completion, False))
        chunks[-1] = {**chunks[-1], "usage": completion["usage"]}  # on the chunk with the finish_reason
        return iter(chunks)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"code": CODES.get(status, "500"), "message": message}}, status, headers)


__all__ = ["ZhipuAPI"]

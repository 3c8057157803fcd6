"""A fake GitHub Models inference API, from GitHub's REST reference
(docs.github.com/en/rest/models/inference) and the answers it gives:

- ``POST /inference/chat/completions`` and
  ``/orgs/{org}/inference/chat/completions``; no embeddings;
- a GitHub token as ``Authorization: Bearer``;
- the body parameters the reference lists, and only those: OpenAI's
  ``max_completion_tokens``, ``n``, ``logprobs``, ``logit_bias``, ``user`` and
  ``parallel_tool_calls`` are refused (400 naming the parameter);
- ``tool_choice`` is "auto", "required" or "none";
- errors are ``{"error": {"code", "message", "details"}}`` with GitHub's
  codes (``unauthorized``, ``unknown_model``, ``RateLimitReached`` with a
  ``retry-after`` header, ``tokens_limit_reached`` as a 413).
"""

from __future__ import annotations

from collections.abc import Sequence

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step
from portway.testing.upstream import Reply, json_reply

CODES = {400: "invalid_request_body", 401: "unauthorized", 403: "no_access", 404: "unknown_model",
         413: "tokens_limit_reached", 429: "RateLimitReached", 500: "internal_error", 503: "service_unavailable"}


class GitHubModelsAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens", "n", "logprobs", "logit_bias", "user",
                                "parallel_tool_calls"})
    tool_choices = frozenset({"auto", "none", "required"})

    def __init__(self, script: Sequence[Step], *, api_key: str | None = None, org: str | None = None) -> None:
        prefix = f"/orgs/{org}/inference" if org else "/inference"
        super().__init__(script, api_key=api_key, chat_path=prefix + "/chat/completions",
                         embeddings_path=prefix + "/no-embeddings")

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"code": CODES.get(status, "internal_error"), "message": message,
                                     "details": message}}, status, headers)


__all__ = ["GitHubModelsAPI"]

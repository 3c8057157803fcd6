"""A fake of Fireworks AI's Chat Completions and Embeddings APIs.

Its rules come from Fireworks' documentation, not from the adapter:

- https://docs.fireworks.ai/tools-sdks/openai-compatibility: a stream's
  ``usage`` comes on its very last chunk, the one with the ``finish_reason``
  (not on a chunk of its own, and whether or not ``stream_options`` asks);
  ``logit_bias`` is among the options not supported (the fake refuses it);
  ``max_tokens`` is lowered to fit the context window unless
  ``context_length_exceeded_behavior`` is ``"error"``;
- https://docs.fireworks.ai/api-reference/post-chatcompletions: reasoning
  models answer ``message.reasoning_content``; errors are
  ``{"error": {"object": "error", "type", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portway.testing.openai_chat import ERROR_TYPES, OpenAIChatAPI
from portway.testing.script import Turn
from portway.testing.upstream import Reply, json_reply


class FireworksAPI(OpenAIChatAPI):
    refused_params = frozenset({"logit_bias"})
    reasoning_field = "reasoning_content"

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        for chunk in super().chunks(turn, completion, False):
            if any(choice.get("finish_reason") for choice in chunk["choices"]):
                chunk = {**chunk, "usage": completion["usage"]}
            yield chunk

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        error_type = ERROR_TYPES.get(status, ("internal_server_error",))[0]
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"object": "error", "type": error_type, "message": message}}, status, headers)


__all__ = ["FireworksAPI"]

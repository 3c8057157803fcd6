"""A fake of Together AI's Chat Completions and Embeddings APIs.

Its rules come from Together's documentation and SDK, not from the adapter:

- together-python's OpenAPI models (``src/together/generated/docs/``):
  ``ChatCompletionRequest`` takes ``max_tokens`` (there is no
  ``max_completion_tokens``: the fake ignores it, as a server ignores a key it
  does not read) and ``logprobs`` as an **integer** (a count of tokens; a
  boolean is refused); ``FinishReason`` includes ``eos``, which the fake
  answers for a turn that ended by itself;
- https://docs.together.ai/docs/inference/chat/reasoning: reasoning models
  return their chain of thought in ``reasoning``, beside ``content``;
- errors in OpenAI's ``{"error": {...}}`` shape (the SDK reads ``error.message``).
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Turn


class TogetherAPI(OpenAIChatAPI):
    reasoning_field = "reasoning"

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        logprobs = body.get("logprobs")
        if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int)):
            return "logprobs: Input should be a valid integer", "logprobs"
        return super().check(body)

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        for choice in completion["choices"]:
            if choice["finish_reason"] == "stop":
                choice["finish_reason"] = "eos"
        return completion


__all__ = ["TogetherAPI"]

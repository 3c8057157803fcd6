"""A fake of OpenRouter's Chat Completions and Embeddings APIs.

Its rules come from OpenRouter's documentation, not from the adapter:

- https://openrouter.ai/docs/api-reference/streaming: streams carry
  ``: OPENROUTER PROCESSING`` comment lines (the fake sends one first), and
  an error after the stream started arrives as a ``data:`` event with an
  ``error`` field (:meth:`OpenRouterAPI.failing_stream`);
- https://openrouter.ai/docs/api/errors: errors are ``{"error": {"code":
  <status>, "message", "metadata"?}}``; a 403 whose ``metadata`` has
  ``flagged_input`` (and ``reasons``) is a moderation refusal;
- https://openrouter.ai/docs/use-cases/reasoning-tokens: reasoning comes as
  ``message.reasoning`` / ``delta.reasoning`` (with ``reasoning_details``);
- https://openrouter.ai/docs/api-reference/overview: ``HTTP-Referer`` and
  ``X-Title`` are optional attribution headers (the fake records them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from portway.testing.openai_chat import CREATED, OpenAIChatAPI
from portway.testing.script import Turn
from portway.testing.upstream import Reply, json_reply, sse_reply


class OpenRouterAPI(OpenAIChatAPI):
    reasoning_field = "reasoning"

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        completion["provider"] = "FakeProvider"
        message = completion["choices"][0]["message"]
        if "reasoning" in message:
            message["reasoning_details"] = [{"type": "reasoning.text", "text": message["reasoning"], "index": 0}]
        return completion

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[Any]:
        yield b": OPENROUTER PROCESSING\n\n"
        yield from super().chunks(turn, completion, include_usage)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error": {"code": status, "message": message}}, status, headers)

    @staticmethod
    def moderation_error(reasons: list[str], flagged: str) -> Reply:
        return json_reply({"error": {"code": 403, "message": "Input flagged by moderation", "metadata": {
            "reasons": reasons, "flagged_input": flagged, "provider_name": "OpenAI", "model_slug": "openai/gpt-4o"}}},
            403)

    @staticmethod
    def failing_stream(text: str, code: int | str, message: str) -> Reply:
        """A stream that starts, then fails as OpenRouter reports it."""
        base = {"id": "gen-1", "object": "chat.completion.chunk", "created": CREATED, "model": "openai/gpt-4o",
                "provider": "OpenAI"}
        return sse_reply([
            b": OPENROUTER PROCESSING\n\n",
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
            {**base, "error": {"code": code, "message": message},
             "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]},
        ], done=True)


__all__ = ["OpenRouterAPI"]

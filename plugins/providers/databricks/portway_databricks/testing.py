"""A fake of a Databricks workspace's serving endpoints (the Foundation Model
APIs' Chat Completions and Embeddings), for tests.

Its rules come from Databricks's own documentation (the Foundation model
REST API reference and "Query reasoning models"), not from the adapter, so an
adapter that forgets a quirk sends what this fake refuses:

- paths are ``/serving-endpoints/chat/completions`` and
  ``/serving-endpoints/embeddings``, the endpoint named by ``model``;
- the token limit is ``max_tokens`` (``max_completion_tokens`` is a 400);
- roles are ``system``, ``user``, ``assistant`` and ``tool``;
- an assistant message carries reasoning as signed content parts, never as
  ``reasoning_content`` (a 400);
- a turn's reasoning comes as content parts: ``{"type": "reasoning",
  "summary": [{"type": "summary_text", "text", "signature"}]}`` then
  ``{"type": "text", "text"}``, and in a stream as deltas whose ``content``
  is such a list;
- errors are ``{"error_code": "...", "message": "..."}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step, Turn, halves
from portway.testing.upstream import Reply, json_reply

#: Databricks's ``error_code`` for each status the fake answers with.
ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
               429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR", 503: "TEMPORARILY_UNAVAILABLE"}
SIGNATURE = "c2lnbmVkLWJ5LXRoZS1mYWtl"


def reasoning_part(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": text, "signature": SIGNATURE}]}


class DatabricksAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    refuses_reasoning_in_history = True

    def __init__(self, script: Sequence[Step], **options: Any) -> None:
        options.setdefault("chat_path", "/serving-endpoints/chat/completions")
        options.setdefault("embeddings_path", "/serving-endpoints/embeddings")
        super().__init__(script, **options)

    def _error(self, status: int, message: str, param: str | None, retry_after: str | None = None) -> Reply:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return json_reply({"error_code": ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": message}, status,
                          headers)

    def completion(self, turn: Turn, model: str) -> dict[str, Any]:
        completion = super().completion(turn, model)
        if turn.reasoning is not None:
            message = completion["choices"][0]["message"]
            message["content"] = [reasoning_part(turn.reasoning), {"type": "text", "text": message["content"] or ""}]
        return completion

    def chunks(self, turn: Turn, completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
        for chunk in super().chunks(turn, completion, include_usage):
            yield chunk
            choices = chunk.get("choices") or []
            if turn.reasoning is not None and choices and choices[0]["delta"].get("role") == "assistant":
                for piece in halves(turn.reasoning):
                    yield {**chunk, "choices": [{**choices[0], "delta": {"content": [reasoning_part(piece)]}}]}


__all__ = ["DatabricksAPI", "reasoning_part"]

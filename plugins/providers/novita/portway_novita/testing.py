"""A fake of Novita AI's Chat Completions and Embeddings, for tests.

Its rules come from Novita's API reference
(https://novita.ai/docs/api-reference/model-apis-llm-create-chat-completion:
the request body it documents), not from the adapter, so an adapter that
forgets a quirk sends what this fake refuses:

- ``max_completion_tokens``, ``user`` and ``parallel_tool_calls`` are not in
  the body (a 400 naming them);
- ``tool_choice`` is not in it either: only ``auto`` and ``none`` (what a
  request with tools does anyway, or with none) are taken;
- answers carry a turn's reasoning as ``reasoning_content``;
- paths are ``/openai/v1/chat/completions`` and ``/openai/v1/embeddings``.

Errors are OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.script import Step


class NovitaAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens", "user", "parallel_tool_calls"})
    tool_choices = frozenset({"auto", "none"})
    reasoning_field = "reasoning_content"

    def __init__(self, script: Sequence[Step], **options: Any) -> None:
        options.setdefault("chat_path", "/openai/v1/chat/completions")
        options.setdefault("embeddings_path", "/openai/v1/embeddings")
        super().__init__(script, **options)


__all__ = ["NovitaAPI"]

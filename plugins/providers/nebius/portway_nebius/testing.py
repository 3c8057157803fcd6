"""A fake of Nebius Token Factory's Chat Completions and Embeddings, for tests.

Its rules come from Nebius's OpenAPI reference
(https://docs.tokenfactory.nebius.com/api-reference/inference/create-chat-completion,
served from ``https://api.tokenfactory.nebius.com/openapi.json``), not from
the adapter, so an adapter that forgets a quirk sends what this fake refuses:

- the token limit is ``max_tokens``; ``max_completion_tokens`` is not in the
  schema and is refused;
- a refused request is a FastAPI validation error: a 422 whose ``detail``
  lists ``{"loc", "msg", "type"}``.

Other errors are OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import RecordedRequest, Reply, json_reply


class NebiusAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens"})

    def _refuse(self, request: RecordedRequest, status: int, message: str, param: str | None = None) -> Reply:
        if status != 400 or param not in self.refused_params:
            return super()._refuse(request, status, message, param)
        self.refusals.append((request, 422, message))
        detail: list[dict[str, Any]] = [{"type": "extra_forbidden", "loc": ["body", param],
                                         "msg": "Extra inputs are not permitted"}]
        return json_reply({"detail": detail}, 422)


__all__ = ["NebiusAPI"]

"""A fake of Hyperbolic's Chat Completions, for tests.

Its rules come from Hyperbolic's REST API page
(https://docs.hyperbolic.xyz/docs/rest-api), not from the adapter, so an
adapter that forgets a quirk sends what this fake refuses:

- the token limit is ``max_tokens`` (``max_completion_tokens`` is a 400);
- roles are ``system``, ``assistant``, ``user`` (and ``tool`` results);
- only ``POST /v1/chat/completions`` exists (no embeddings).

Errors are OpenAI's ``{"error": {...}}`` shape.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import FakeUpstream


class HyperbolicAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_completion_tokens"})
    roles = frozenset({"system", "user", "assistant", "tool"})

    def install(self, upstream: FakeUpstream) -> HyperbolicAPI:
        upstream.add(self.chat_path, self._chat)
        return self


__all__ = ["HyperbolicAPI"]

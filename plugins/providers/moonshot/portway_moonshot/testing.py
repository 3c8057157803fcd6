"""A fake of Moonshot AI's (Kimi's) Chat Completions, for tests.

Its rules come from Moonshot's own API reference
(https://platform.kimi.ai/docs/api/chat, models-overview, tool-use), not
from the adapter, so an adapter that forgets a quirk sends what this fake
refuses:

- ``max_tokens`` is a 400 (the reference marks it deprecated for
  ``max_completion_tokens``, and the K2.5+ models do not honour it: the fake
  makes that loss visible);
- ``n`` is at most 5;
- ``tool_choice`` is ``auto`` or ``none`` or a named function ("the current
  version of Kimi API does not support the tool_choice=required parameter");
- ``response_format`` is ``text`` or ``json_object``;
- roles are ``system``, ``user``, ``assistant`` and ``tool``;
- answers carry a turn's reasoning as ``reasoning_content``;
- only ``POST /v1/chat/completions`` exists (no embeddings).

Errors are OpenAI's ``{"error": {"message", "type"}}`` shape.
"""

from __future__ import annotations

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import FakeUpstream


class MoonshotAPI(OpenAIChatAPI):
    refused_params = frozenset({"max_tokens"})
    max_n = 5
    tool_choices = frozenset({"auto", "none", "named"})
    response_formats = frozenset({"text", "json_object"})
    roles = frozenset({"system", "user", "assistant", "tool"})
    reasoning_field = "reasoning_content"

    def install(self, upstream: FakeUpstream) -> MoonshotAPI:
        upstream.add(self.chat_path, self._chat)
        return self


__all__ = ["MoonshotAPI"]

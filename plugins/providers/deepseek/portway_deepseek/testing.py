"""A fake of DeepSeek's Chat Completions API.

Its rules come from DeepSeek's documentation, not from the adapter:

- https://api-docs.deepseek.com/api/create-chat-completion: the roles are
  ``system``, ``user``, ``assistant`` and ``tool``; ``response_format`` is
  ``text`` or ``json_object``; the length limit is ``max_tokens`` (other keys
  are not read: the fake ignores them, as DeepSeek does);
- https://api-docs.deepseek.com/guides/thinking_mode: thinking mode is the
  ``deepseek-reasoner`` model or ``thinking: {"type": "enabled"}`` (the default
  for V4 models); in it ``logprobs`` / ``top_logprobs`` are an error, the
  chain of thought is ``reasoning_content`` beside ``content``, and an
  assistant turn that called tools must carry its ``reasoning_content`` back
  ("The reasoning_content in the thinking mode must be passed back to the
  API"), while other turns' is ignored;
- there is no ``/embeddings``.
"""

from __future__ import annotations

from typing import Any

from portway.testing.openai_chat import OpenAIChatAPI
from portway.testing.upstream import FakeUpstream


def thinking_mode(body: dict[str, Any]) -> bool:
    model = str(body.get("model"))
    toggle = (body.get("thinking") or {}).get("type") if isinstance(body.get("thinking"), dict) else None
    if model == "deepseek-reasoner":
        return True
    return toggle == "enabled" or (toggle is None and model.startswith("deepseek-v4"))


class DeepSeekAPI(OpenAIChatAPI):
    roles = frozenset({"system", "user", "assistant", "tool"})
    response_formats = frozenset({"text", "json_object"})
    reasoning_field = "reasoning_content"

    def install(self, upstream: FakeUpstream) -> DeepSeekAPI:
        upstream.add(self.chat_path, self._chat)  # no embeddings
        return self

    def check(self, body: dict[str, Any]) -> tuple[str, str | None] | None:
        if thinking_mode(body):
            for key in ("logprobs", "top_logprobs"):
                if body.get(key):
                    return f"{key} is not supported in the thinking mode", key
            for index, message in enumerate(body.get("messages") or ()):
                if isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls") \
                        and not message.get("reasoning_content"):
                    return ("The `reasoning_content` in the thinking mode must be passed back to the API.",
                            f"messages[{index}]")
        return super().check(body)


__all__ = ["DeepSeekAPI", "thinking_mode"]

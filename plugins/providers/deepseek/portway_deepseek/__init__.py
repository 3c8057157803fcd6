"""DeepSeek provider: DeepSeek's OpenAI-compatible Chat Completions.

DeepSeek knows no ``developer`` role, takes ``max_tokens`` only, has JSON
mode but no JSON schema, returns one choice, and in thinking mode (the
reasoner, or ``thinking: {"type": "enabled"}``) refuses ``logprobs`` and
wants each tool-calling turn's ``reasoning_content`` sent back.  Sources are
in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks, refused

PORTWAY_PLUGIN_KIND = "provider"

#: Models that think unless told not to (the reasoner always; V4 by default).
THINKING_BY_DEFAULT = ("deepseek-reasoner", "deepseek-v4")


def thinks(body: dict[str, Any]) -> bool:
    """Whether DeepSeek answers ``body`` in thinking mode."""
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    model = body.get("model")
    if isinstance(model, str) and model.startswith("deepseek-reasoner"):
        return True
    if kind in ("enabled", "disabled"):
        return kind == "enabled"
    return isinstance(model, str) and model.startswith(THINKING_BY_DEFAULT)


class DeepSeekProvider(OpenAICompatibleProvider):
    type = "deepseek"
    default_base_url = "https://api.deepseek.com"
    env_key = "DEEPSEEK_API_KEY"
    default_models = ("deepseek-chat", "deepseek-reasoner")
    quirks = Quirks(
        refuse={"logit_bias": "DeepSeek takes no logit_bias"},
        drop=frozenset({"seed", "user", "parallel_tool_calls", "service_tier", "store", "metadata"}),
        rename={"max_completion_tokens": "max_tokens"},
        max_n=1,
        json_schema=False,
        developer_role=False,
        # Thinking mode: a tool-calling turn's reasoning_content must come back (a 400 without it);
        # an Anthropic client sends it back as thinking blocks.
        thinking_as_reasoning=True,
    )
    # https://api-docs.deepseek.com/quick_start/pricing: text only; JSON output and tool calls on both
    capabilities = {"deepseek-*": {"tools", "json"}}

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        if thinks(body):
            for key in ("logprobs", "top_logprobs"):
                if body.get(key):
                    raise refused(self.name, key, "DeepSeek's thinking mode returns no log probabilities")
        return body

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (DeepSeek has no embeddings endpoint)")


@hookimpl
def register_providers(register: Any) -> None:
    register(DeepSeekProvider)

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
    )
    # https://api-docs.deepseek.com/quick_start/pricing: text only; JSON output and tool calls on both
    capabilities = {"deepseek-*": {"tools", "json"}}

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        if thinks(body):
            for key in ("logprobs", "top_logprobs"):
                if body.get(key):
                    raise refused(self.name, key, "DeepSeek's thinking mode returns no log probabilities")
        return body

    def _wire_body(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        # An Anthropic client sends its earlier thinking back as thinking blocks, which the
        # canonical form keeps as ``thinking_blocks`` and the base strips before any hook of
        # an OpenAI-format adapter runs; DeepSeek needs a tool turn's reasoning back as
        # ``reasoning_content``, so it is taken from the blocks first.
        return super()._wire_body(with_reasoning_from_thinking(body), ctx)

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (DeepSeek has no embeddings endpoint)")


def with_reasoning_from_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each assistant message that carries Anthropic thinking
    blocks but no ``reasoning_content`` given their text as its
    ``reasoning_content`` (a copy; ``body`` itself is left as it was)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(_thinking_text(m) for m in messages):
        return body
    return {**body, "messages": [{**m, "reasoning_content": _thinking_text(m)} if _thinking_text(m) else m
                                 for m in messages]}


def _thinking_text(message: Any) -> str:
    if not isinstance(message, dict) or message.get("reasoning_content"):
        return ""
    blocks = message.get("thinking_blocks")
    return "".join(b["thinking"] for b in blocks if isinstance(b, dict) and isinstance(b.get("thinking"), str)) \
        if isinstance(blocks, list) else ""


@hookimpl
def register_providers(register: Any) -> None:
    register(DeepSeekProvider)

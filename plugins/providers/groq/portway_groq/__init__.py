"""Groq provider: GroqCloud's OpenAI-compatible Chat Completions.

Groq validates request bodies strictly (an unknown key, even inside a
message, is a 400), so the adapter sends only what Groq documents: messages
with only the keys Groq takes (no ``name``, no earlier ``reasoning_content``),
system text as a string, and no ``logprobs`` / ``logit_bias`` /
``top_logprobs`` at all.
Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

#: What Groq takes on a message, by role: it refuses any other key with a 400
#: ("property 'reasoning_content' is unsupported"), such as ``name`` (its
#: compatibility page), an earlier turn's ``reasoning_content``, and the
#: ``refusal`` and ``annotations`` an OpenAI client echoes back.
MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}

#: Keys Groq answers with a 400 whenever they are present, even ``false``/``null``
#: (https://console.groq.com/docs/openai, "Currently Unsupported OpenAI Features").
ABSENT_KEYS = ("logprobs", "logit_bias", "top_logprobs")


class GroqProvider(OpenAICompatibleProvider):
    type = "groq"
    default_base_url = "https://api.groq.com/openai/v1"
    env_key = "GROQ_API_KEY"
    env_base_url = "GROQ_BASE_URL"
    default_models = ("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b",
                      "openai/gpt-oss-20b", "meta-llama/llama-4-scout-17b-16e-instruct",
                      "meta-llama/llama-4-maverick-17b-128e-instruct", "qwen/qwen3-32b",
                      "moonshotai/kimi-k2-instruct-0905")
    quirks = Quirks(
        refuse={key: "Groq returns no log probabilities and takes no logit bias" for key in ABSENT_KEYS},
        drop=frozenset(ABSENT_KEYS),  # what asks for nothing (false, null) is a 400 at Groq too
        max_n=1,
        text_as_string=True,
        reasoning_field="reasoning",
    )
    # https://console.groq.com/docs/models, /docs/tool-use, /docs/vision, /docs/structured-outputs
    capabilities = {
        "meta-llama/llama-4-*": {"tools", "vision", "json"},
        "meta-llama/llama-guard-*": set(),
        "meta-llama/llama-prompt-guard-*": set(),
        "openai/gpt-oss-safeguard-*": {"json"},
        "llama-3.3-70b-versatile": {"tools", "json"},
        "llama-3.1-8b-instant": {"tools", "json"},
        "openai/gpt-oss-*": {"tools", "json"},
        "qwen/qwen3-32b": {"tools", "json"},
        "moonshotai/kimi-k2-*": {"tools", "json"},
    }

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or all(_known(m) for m in messages):
            return body
        kept = [m if _known(m) else {k: v for k, v in m.items() if k in MESSAGE_KEYS[m["role"]]} for m in messages]
        return {**body, "messages": kept}

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (Groq has no embeddings endpoint)")


def _known(message: Any) -> bool:
    """Whether ``message`` carries only keys Groq takes (or is not one Groq's table covers)."""
    role = message.get("role") if isinstance(message, dict) else None
    keys = MESSAGE_KEYS.get(role) if isinstance(role, str) else None
    return keys is None or message.keys() <= keys


@hookimpl
def register_providers(register: Any) -> None:
    register(GroqProvider)

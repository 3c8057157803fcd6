"""Fireworks AI provider: Fireworks' OpenAI-compatible Chat Completions and Embeddings.

Fireworks lowers ``max_tokens`` silently when a prompt does not leave room
for it (unless told otherwise), puts a stream's usage on its last content
chunk, answers ``logprobs`` in the legacy completions shape and takes no
``logit_bias``.  Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

_LOGPROBS = "Fireworks answers log probabilities in the legacy completions shape, not OpenAI's"


class FireworksProvider(OpenAICompatibleProvider):
    type = "fireworks"
    default_base_url = "https://api.fireworks.ai/inference/v1"
    env_key = "FIREWORKS_API_KEY"
    default_models = ("accounts/fireworks/models/llama-v3p3-70b-instruct",
                      "accounts/fireworks/models/llama4-maverick-instruct-basic",
                      "accounts/fireworks/models/deepseek-v3p1", "accounts/fireworks/models/deepseek-r1-0528",
                      "accounts/fireworks/models/qwen3-235b-a22b", "accounts/fireworks/models/kimi-k2-instruct",
                      "accounts/fireworks/models/gpt-oss-120b", "nomic-ai/nomic-embed-text-v1.5")
    quirks = Quirks(
        refuse={"logprobs": _LOGPROBS, "top_logprobs": _LOGPROBS,
                "logit_bias": "Fireworks does not support logit_bias"},
    )
    # https://docs.fireworks.ai/guides/function-calling#supported-models, /guides/querying-vision-language-models
    capabilities = {
        "accounts/fireworks/models/llama4-*": {"tools", "vision", "json"},
        "accounts/fireworks/models/qwen2p5-vl-*": {"vision", "json"},
        "accounts/fireworks/models/deepseek-r1*": {"json"},
        "accounts/fireworks/models/deepseek-v3*": {"tools", "json"},
        "accounts/fireworks/models/qwen3-*": {"tools", "json"},
        "accounts/fireworks/models/kimi-k2*": {"tools", "json"},
        "accounts/fireworks/models/gpt-oss-*": {"tools", "json"},
        "accounts/fireworks/models/llama-v3p*": {"tools", "json"},
    }

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        # Fireworks' default ("truncate") lowers max_tokens to fit the context window without a word;
        # "error" answers as OpenAI does, a 400 the router can act on (fall back to a bigger window).
        if "context_length_exceeded_behavior" in body:
            return body
        return {**body, "context_length_exceeded_behavior": "error"}


@hookimpl
def register_providers(register: Any) -> None:
    register(FireworksProvider)

"""Novita AI: OpenAI-compatible Chat Completions and Embeddings at
``https://api.novita.ai/openai/v1``.

Novita's differences from OpenAI, as :class:`~portway.quirks.Quirks` (each
with its source in the README), from the request body its API reference
documents:

- the token limit is ``max_tokens``: ``max_completion_tokens`` is sent under that name;
- ``user`` and ``parallel_tool_calls`` are not in it: dropped (they only steer);
- ``tool_choice`` is not in it: ``"required"`` or a named function, whose
  loss would change the answer, is a 400 naming it;
- reasoning models return ``reasoning_content`` (OpenAI's canonical name here).
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class NovitaProvider(OpenAICompatibleProvider):
    type = "novita"
    default_base_url = "https://api.novita.ai/openai/v1"
    env_key = "NOVITA_API_KEY"
    default_models = ("deepseek/deepseek-v3.1", "deepseek/deepseek-r1-0528", "meta-llama/llama-3.3-70b-instruct",
                      "qwen/qwen3-235b-a22b-instruct-2507", "moonshotai/kimi-k2-instruct", "zai-org/glm-4.5",
                      "baai/bge-m3")
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        drop=frozenset({"user", "parallel_tool_calls"}),
        tool_choice_required=False,
        tool_choice_named=False,
    )


@hookimpl
def register_providers(register: Any) -> None:
    register(NovitaProvider)

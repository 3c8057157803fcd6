"""Hyperbolic: OpenAI-compatible Chat Completions at ``https://api.hyperbolic.xyz/v1``.

Hyperbolic's differences from OpenAI, as :class:`~portway.quirks.Quirks`
(each with its source in the README):

- the token limit is ``max_tokens``: ``max_completion_tokens`` is sent under that name;
- roles are ``system``, ``assistant`` and ``user`` (and ``tool`` results): a
  ``developer`` message is sent as ``system``;
- there is no embeddings endpoint.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class HyperbolicProvider(OpenAICompatibleProvider):
    type = "hyperbolic"
    default_base_url = "https://api.hyperbolic.xyz/v1"
    env_key = "HYPERBOLIC_API_KEY"
    default_models = ("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Meta-Llama-3.1-405B-Instruct",
                      "deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen2.5-72B-Instruct",
                      "Qwen/Qwen2.5-VL-72B-Instruct")
    quirks = Quirks(rename={"max_completion_tokens": "max_tokens"}, developer_role=False)

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings")


@hookimpl
def register_providers(register: Any) -> None:
    register(HyperbolicProvider)

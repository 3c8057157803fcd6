"""Nebius Token Factory (formerly Nebius AI Studio): OpenAI-compatible Chat
Completions and Embeddings at ``https://api.tokenfactory.nebius.com/v1``.

Nebius's difference from OpenAI, as :class:`~portway.quirks.Quirks` (source
in the README): its request schema's token limit is ``max_tokens``, so
``max_completion_tokens`` is sent under that name.  FastAPI validation
errors (a 422 whose ``detail`` is a list of ``{"loc", "msg"}``) are read
into one message.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl, serialization
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class NebiusProvider(OpenAICompatibleProvider):
    type = "nebius"
    default_base_url = "https://api.tokenfactory.nebius.com/v1"
    env_key = "NEBIUS_API_KEY"
    default_models = ("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct",
                      "deepseek-ai/DeepSeek-V3-0324", "deepseek-ai/DeepSeek-R1-0528", "Qwen/Qwen3-235B-A22B",
                      "openai/gpt-oss-120b", "BAAI/bge-en-icl", "Qwen/Qwen3-Embedding-8B")
    quirks = Quirks(rename={"max_completion_tokens": "max_tokens"})

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        detail = data.get("detail") if isinstance(data, dict) and "error" not in data else None
        if isinstance(detail, str):
            return None, detail
        if isinstance(detail, list) and detail:
            return None, "; ".join(_validation_problem(item) for item in detail)
        return OpenAICompatibleProvider.parse_error_body(content)


def _validation_problem(item: Any) -> str:
    """One entry of a FastAPI validation error: ``body.n: Input should be ...``."""
    if not isinstance(item, dict):
        return str(item)
    location = ".".join(str(part) for part in item.get("loc") or ())
    message = str(item.get("msg") or item)
    return f"{location}: {message}" if location else message


@hookimpl
def register_providers(register: Any) -> None:
    register(NebiusProvider)

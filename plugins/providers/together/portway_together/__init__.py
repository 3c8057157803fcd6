"""Together AI provider: Together's OpenAI-compatible Chat Completions and Embeddings.

Together takes ``max_tokens`` (not ``max_completion_tokens``), counts
``logprobs`` as a number of tokens and returns them in its own shape,
returns a model's reasoning as ``reasoning`` and may end a turn with
``finish_reason: "eos"``.  Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

#: Together's finish reasons that OpenAI spells otherwise (together-python's FinishReason enum).
FINISH_REASONS = {"eos": "stop", "function_call": "tool_calls"}

_LOGPROBS = "Together counts logprobs as a number of tokens and answers them in its own shape"


class TogetherProvider(OpenAICompatibleProvider):
    type = "together"
    default_base_url = "https://api.together.xyz/v1"
    env_key = "TOGETHER_API_KEY"
    env_base_url = "TOGETHER_BASE_URL"
    default_models = ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
                      "deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-235B-A22B-Instruct-2507-tput",
                      "moonshotai/Kimi-K2-Instruct-0905", "openai/gpt-oss-120b",
                      "intfloat/multilingual-e5-large-instruct", "BAAI/bge-large-en-v1.5")
    quirks = Quirks(
        refuse={"logprobs": _LOGPROBS, "top_logprobs": _LOGPROBS},
        drop=frozenset({"user", "parallel_tool_calls"}),
        rename={"max_completion_tokens": "max_tokens"},
        reasoning_field="reasoning",
    )
    # https://docs.together.ai/docs/serverless-models, /docs/function-calling, /docs/vision-overview, /docs/json-mode
    capabilities = {
        "meta-llama/llama-4-*": {"tools", "vision", "json"},
        "qwen/qwen2.5-vl-*": {"vision", "json"},
        "meta-llama/llama-3.2-*-vision-*": {"vision", "json"},
        "meta-llama/llama-3.3-70b-instruct-turbo*": {"tools", "json"},
        "meta-llama/meta-llama-3.1-*": {"tools", "json"},
        "deepseek-ai/deepseek-r1*": {"json"},
        "deepseek-ai/deepseek-v3*": {"tools", "json"},
        "qwen/qwen3-*": {"tools", "json"},
        "moonshotai/kimi-k2*": {"tools", "json"},
        "openai/gpt-oss-*": {"tools", "json"},
        "meta-llama/llama-guard-*": set(),
    }

    def to_completion(self, data: Any) -> Any:
        data = super().to_completion(data)
        _map_finish_reasons(data)
        return data

    def to_chunk(self, data: Any) -> Any:
        data = super().to_chunk(data)
        _map_finish_reasons(data)
        return data


def _map_finish_reasons(answer: Any) -> None:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("finish_reason") in FINISH_REASONS:
            choice["finish_reason"] = FINISH_REASONS[choice["finish_reason"]]


@hookimpl
def register_providers(register: Any) -> None:
    register(TogetherProvider)

"""DeepInfra provider: DeepInfra's OpenAI-compatible Chat Completions and Embeddings.

DeepInfra's API is a FastAPI service: its errors are ``{"detail": ...}``
(a string, ``{"error": ...}``, or a list of validation problems), a request
without a valid token is a 403 "Not authenticated", it takes ``max_tokens``
only, ``tool_choice`` only as a string, and no ``developer`` role.  Sources
are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl, serialization
from portway.errors import ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.providers import Provider
from portway.quirks import Quirks
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"


class DeepInfraProvider(OpenAICompatibleProvider):
    type = "deepinfra"
    default_base_url = "https://api.deepinfra.com/v1/openai"
    env_key = "DEEPINFRA_TOKEN"
    default_models = ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-R1",
                      "Qwen/Qwen3-235B-A22B-Instruct-2507", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
                      "BAAI/bge-m3", "Qwen/Qwen3-Embedding-8B")
    quirks = Quirks(
        refuse={"logit_bias": "DeepInfra takes no logit_bias",
                "top_logprobs": "DeepInfra returns no top log probabilities"},
        drop=frozenset({"parallel_tool_calls", "store", "metadata"}),
        rename={"max_completion_tokens": "max_tokens"},
        tool_choice_named=False,
        developer_role=False,
    )
    # https://deepinfra.com/docs/advanced/function_calling, /docs/tutorials/vision
    capabilities = {
        "meta-llama/llama-4-*": {"tools", "vision", "json"},
        "qwen/qwen2.5-vl-*": {"vision", "json"},
        "meta-llama/llama-3.2-*-vision-*": {"vision", "json"},
        "deepseek-ai/deepseek-r1*": {"json"},
    }

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """FastAPI's ``{"detail": ...}`` as well as OpenAI's ``{"error": {...}}``."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        detail = data.get("detail") if isinstance(data, dict) and "error" not in data else None
        if isinstance(detail, str):
            return None, detail
        if isinstance(detail, dict) and isinstance(detail.get("error"), str):
            return None, detail["error"]
        if isinstance(detail, list) and detail:
            problems = [f"{'.'.join(map(str, item.get('loc') or ()))}: {item.get('msg')}" for item in detail
                        if isinstance(item, dict)]
            return "invalid_request_error", "; ".join(problems) or str(detail)
        return Provider.parse_error_body(content)

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        _, message = self.parse_error_body(response.content)
        if response.status in (401, 403) and message == "Not authenticated":
            return self.make_error(message, kind="authentication", status=401)
        return super().error_from_response(response)


@hookimpl
def register_providers(register: Any) -> None:
    register(DeepInfraProvider)

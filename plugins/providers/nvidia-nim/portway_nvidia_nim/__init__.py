"""NVIDIA NIM: OpenAI-compatible Chat Completions and Embeddings, on NVIDIA's
API catalog (``https://integrate.api.nvidia.com/v1``) or a self-hosted NIM
container (``http://<host>:8000/v1``).

NIM's differences from OpenAI (each with its source in the README):

- not every model takes ``max_completion_tokens``; all take ``max_tokens``, so
  it is sent under that name (a :class:`~portway.quirks.Quirks` rename);
- retrieval embedding models (``nv-embedqa-*``, ``llama-*-embed-*``) need an
  ``input_type`` (``query`` or ``passage``) that OpenAI's API has no place
  for: ``embeddings_input_type`` in the config supplies it when a request
  has none;
- errors are RFC 7807 problem details, ``{"status", "title", "detail"}``
  (``type``, ``requestId`` besides), read here into the message.
"""

from __future__ import annotations

from typing import Any, Literal

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class NvidiaNimConfig(ProviderConfig):
    #: ``input_type`` sent with an embeddings request that has none (NIM's
    #: retrieval models refuse a request without it); unset: none is added.
    embeddings_input_type: Literal["query", "passage"] | None = None


class NvidiaNimProvider(OpenAICompatibleProvider):
    type = "nvidia-nim"
    config_model = NvidiaNimConfig
    default_base_url = "https://integrate.api.nvidia.com/v1"
    env_key = "NVIDIA_API_KEY"
    env_base_url = "NVIDIA_BASE_URL"
    default_models = ("meta/llama-3.3-70b-instruct", "meta/llama-3.1-8b-instruct",
                      "nvidia/llama-3.3-nemotron-super-49b-v1.5", "deepseek-ai/deepseek-r1-0528",
                      "qwen/qwen3-235b-a22b", "nvidia/nv-embedqa-e5-v5", "nvidia/llama-3.2-nv-embedqa-1b-v2")
    quirks = Quirks(rename={"max_completion_tokens": "max_tokens"})

    @property
    def settings(self) -> NvidiaNimConfig:
        return self.config  # type: ignore[return-value]

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        input_type = self.settings.embeddings_input_type
        if input_type is not None and "input_type" not in body:
            body = {**body, "input_type": input_type}
        return await super().embeddings(body, ctx)

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """NIM's problem details (``{"status", "title", "detail"}``), or the
        shapes the base reads (a self-hosted NIM answers in OpenAI's)."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "error" not in data and "message" not in data and (
                "detail" in data or "title" in data):
            title, detail = data.get("title"), data.get("detail")
            parts = [str(part) for part in (title, detail) if part]
            return None, ": ".join(parts) or "upstream returned an error with no detail"
        return OpenAICompatibleProvider.parse_error_body(content)


@hookimpl
def register_providers(register: Any) -> None:
    register(NvidiaNimProvider)

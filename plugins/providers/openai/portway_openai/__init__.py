"""OpenAI provider: Chat Completions (streamed or not) and Embeddings.

OpenAI's wire format is Portway's canonical format, so this adapter is the
shared :class:`~portway.formats.openai.OpenAICompatibleProvider` plus
OpenAI's own headers and one quirk of its reasoning models.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider

PORTWAY_PLUGIN_KIND = "provider"

# Reasoning models reject `max_tokens` and want `max_completion_tokens`.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class OpenAIConfig(ProviderConfig):
    organization: str | None = None
    project: str | None = None


class OpenAIProvider(OpenAICompatibleProvider):
    type = "openai"
    config_model = OpenAIConfig
    default_base_url = "https://api.openai.com/v1"
    env_key = "OPENAI_API_KEY"
    env_base_url = "OPENAI_BASE_URL"
    default_models = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o4-mini",
                      "text-embedding-3-small", "text-embedding-3-large")

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        config: OpenAIConfig = self.config  # type: ignore[assignment]
        if config.organization:
            headers["openai-organization"] = config.organization
        if config.project:
            headers["openai-project"] = config.project
        return headers

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        if "max_tokens" in body and str(body.get("model", "")).startswith(REASONING_PREFIXES):
            body = dict(body)
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        return body


@hookimpl
def register_providers(register: Any) -> None:
    register(OpenAIProvider)

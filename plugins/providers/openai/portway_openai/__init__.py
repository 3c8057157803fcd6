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
    #: Send Responses API clients' requests to the upstream's own /responses
    #: as they are.  Unset: only when the base URL is OpenAI's (a server that
    #: is merely OpenAI-compatible rarely has the Responses API).
    responses_api: bool | None = None


class OpenAIProvider(OpenAICompatibleProvider):
    type = "openai"
    config_model = OpenAIConfig
    default_base_url = "https://api.openai.com/v1"
    env_key = "OPENAI_API_KEY"
    env_base_url = "OPENAI_BASE_URL"
    # Context window and maximum output, from the model pages of platform.openai.com/docs/models.
    limits = {"gpt-4o*": (128_000, 16_384), "gpt-4.1*": (1_047_576, 32_768), "gpt-5*": (400_000, 128_000),
              "o3*": (200_000, 100_000), "o4-mini*": (200_000, 100_000)}
    default_models = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o4-mini",
                      "text-embedding-3-small", "text-embedding-3-large")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        native = self.settings.responses_api
        if native is None:
            native = self.base_url == self.default_base_url
        # A Responses API client's request goes to the upstream's own /responses as it was sent.
        self.native_formats = frozenset({"responses"}) if native else frozenset()

    @property
    def settings(self) -> OpenAIConfig:
        return self.config  # type: ignore[return-value]

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

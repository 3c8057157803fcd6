"""Azure OpenAI provider: Chat Completions (streamed or not) and Embeddings
on an Azure OpenAI resource.

The wire format is OpenAI's, so this is the core's
:class:`~portway.formats.openai.OpenAICompatibleProvider` with Azure's URLs,
credentials and quirks: the model a client names is the *deployment*
(``/openai/deployments/{deployment}/...?api-version=...``), or, with
``api_version: v1``, the ``model`` of the version-less v1 API
(``/openai/v1/...``); the key goes in ``api-key`` (or an Entra ID token in
``Authorization``); content-filter refusals are classified (see
:mod:`portway_azure_openai.errors`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr, field_validator, model_validator

from portway import hookimpl
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway_azure_openai.errors import content_filter_error, parse_azure_error

PORTWAY_PLUGIN_KIND = "provider"

#: The latest GA ``api-version`` of the dated data-plane API (Azure's REST
#: reference, "Azure OpenAI in Microsoft Foundry Models REST API reference",
#: 2025-11: "the latest GA release ... 2024-10-21"; openai-python's
#: ``AzureOpenAI`` has no default and requires one).
DEFAULT_API_VERSION = "2024-10-21"
#: ``api_version`` value selecting the version-less v1 API.
V1 = "v1"
#: The first dated version that takes ``stream_options`` (Azure's API
#: lifecycle page: added in 2024-09-01-preview; in GA 2024-10-21).
STREAM_OPTIONS_SINCE = "2024-09-01"
#: Deployment-name rule for reasoning models, which refuse ``max_tokens``
#: (used when ``reasoning_deployments`` is not configured).
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class AzureOpenAIConfig(ProviderConfig):
    #: A dated ``api-version`` (``2024-10-21``, ``2025-04-01-preview``) for
    #: the deployments API, or ``v1`` for the version-less v1 API.
    api_version: str = DEFAULT_API_VERSION
    #: A Microsoft Entra ID access token (scope
    #: ``https://cognitiveservices.azure.com/.default``), sent as a bearer
    #: token instead of ``api-key``.
    azure_ad_token: SecretStr | None = None
    #: Deployments (shell-style patterns) that serve reasoning models, whose
    #: ``max_tokens`` is sent as ``max_completion_tokens``.  Unset: deployments
    #: whose name starts with o1, o3, o4 or gpt-5.
    reasoning_deployments: list[str] | None = None

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != V1 and (not value or any(c in value for c in "?&#/ ")):
            raise ValueError("must be a dated API version such as 2024-10-21 or 2025-04-01-preview, or v1")
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> AzureOpenAIConfig:
        if self.api_key is not None and self.azure_ad_token is not None:
            raise ValueError("give api_key or azure_ad_token, not both (they are two ways to authenticate)")
        return self


class AzureOpenAIProvider(OpenAICompatibleProvider):
    type = "azure-openai"
    catalog_id = "azure"  # genai-prices' id for its models' prices
    config_model = AzureOpenAIConfig
    env_key = "AZURE_OPENAI_API_KEY"
    env_base_url = "AZURE_OPENAI_ENDPOINT"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if config.base_url is None and os.environ.get(self.env_base_url or ""):
            config = config.model_copy(update={"base_url": os.environ[self.env_base_url or ""]})
        super().__init__(name, config)
        settings: AzureOpenAIConfig = config  # type: ignore[assignment]
        # The SDK's base URL is the resource's root; one copied from a v1 example also works.
        for suffix in ("/openai/v1", "/openai"):
            if self.base_url.endswith(suffix):
                self.base_url = self.base_url[: -len(suffix)]
                break
        # As in openai-python's AzureOpenAI: an explicit credential selects the
        # principal; only a configuration naming neither reads the environment,
        # where an Entra ID token wins over a key.
        token = settings.azure_ad_token.get_secret_value() if settings.azure_ad_token is not None else None
        if token is None and settings.api_key is None:
            token = os.environ.get("AZURE_OPENAI_AD_TOKEN") or None
        if token is not None:
            self.api_key = None
        self.ad_token = token
        self.v1 = settings.api_version == V1
        self.query = "" if self.v1 else "?api-version=" + quote(settings.api_version, safe="")
        self.stream_options = self.v1 or settings.api_version[:10] >= STREAM_OPTIONS_SINCE
        self.reasoning_patterns = settings.reasoning_deployments

    @property
    def settings(self) -> AzureOpenAIConfig:
        return self.config  # type: ignore[return-value]

    def auth_headers(self) -> dict[str, str]:
        if self.ad_token:
            return {"authorization": f"Bearer {self.ad_token}"}
        return {"api-key": self.api_key} if self.api_key else {}

    # -- where requests go ----------------------------------------------------------

    def chat_url(self, body: dict[str, Any]) -> str:
        return self._url(body, "/chat/completions")

    def embeddings_url(self, body: dict[str, Any]) -> str:
        return self._url(body, "/embeddings")

    def _url(self, body: dict[str, Any], operation: str) -> str:
        if self.v1:
            return "/openai/v1" + operation  # the deployment is the body's model
        deployment = body.get("model")
        if not isinstance(deployment, str) or not deployment:
            raise PortwayError(f"provider {self.name!r} needs a model: the name of an Azure OpenAI deployment",
                               kind="bad_request", param="model")
        return f"/openai/deployments/{quote(deployment, safe='')}{operation}{self.query}"

    # -- the request body -------------------------------------------------------------

    def is_reasoning(self, deployment: str) -> bool:
        """Whether ``deployment`` serves a reasoning model (which takes
        ``max_completion_tokens`` and refuses ``max_tokens``)."""
        name = deployment.lower()
        if self.reasoning_patterns is None:
            return name.startswith(REASONING_PREFIXES)
        return any(fnmatchcase(name, pattern.lower()) for pattern in self.reasoning_patterns)

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        body = super().prepare(body)
        if "max_tokens" in body and self.is_reasoning(str(body.get("model", ""))):
            body = dict(body)
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if "stream_options" in body and not self.stream_options:
            # Dated versions before 2024-09-01 refuse it ("Unrecognized request argument").
            body = {k: v for k, v in body.items() if k != "stream_options"}
        return body

    # -- answers ------------------------------------------------------------------------

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        return parse_azure_error(content)

    def stream_error(self, error: Any) -> ProviderError:
        filtered = content_filter_error(error)
        if filtered is not None:
            return self.make_error(filtered, kind="content_filter", code="content_filter")
        return super().stream_error(error)

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """The core's OpenAI stream, with Azure's prompt-filter chunk folded
        in: Azure opens a stream with a chunk of its own that has no choices,
        an empty ``id`` and ``model``, ``created: 0`` and only
        ``prompt_filter_results``; that key moves onto the next chunk with
        choices, so every chunk a client sees has them."""
        held: list[Any] | None = None
        async with aclosing(super().chat_stream_batches(body, ctx)) as batches:
            async for batch in batches:
                out = []
                for chunk in batch:
                    if not chunk.get("choices") and not chunk.get("usage") and "prompt_filter_results" in chunk:
                        results = chunk["prompt_filter_results"]
                        held = (held or []) + (results if isinstance(results, list) else [results])
                        continue
                    if held is not None and chunk.get("choices"):
                        chunk = {**chunk, "prompt_filter_results": held}
                        held = None
                    out.append(chunk)
                if out:
                    yield out


@hookimpl
def register_providers(register: Any) -> None:
    register(AzureOpenAIProvider)

"""OpenRouter provider: OpenRouter's OpenAI-compatible Chat Completions and Embeddings.

OpenRouter routes one request to one of many upstream providers.  It takes
attribution headers (``HTTP-Referer``, ``X-Title``), returns reasoning as
``reasoning``, keeps SSE streams alive with comment lines, and reports a
failure after the stream started as a chunk with an ``error`` and
``finish_reason: "error"``, which the adapter turns into a classified
error.  Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import ProviderError, kind_for_status, kind_for_type
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"


class OpenRouterConfig(ProviderConfig):
    #: Your app's URL, sent as ``HTTP-Referer`` (OpenRouter's rankings and attribution).
    site_url: str | None = None
    #: Your app's name, sent as ``X-Title``.
    app_name: str | None = None


class OpenRouterProvider(OpenAICompatibleProvider):
    type = "openrouter"
    config_model = OpenRouterConfig
    default_base_url = "https://openrouter.ai/api/v1"
    env_key = "OPENROUTER_API_KEY"
    default_models = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "google/gemini-2.5-flash",
                      "meta-llama/llama-3.3-70b-instruct", "deepseek/deepseek-r1", "openrouter/auto")
    quirks = Quirks(reasoning_field="reasoning")

    def default_headers(self) -> dict[str, str]:
        config: OpenRouterConfig = self.config  # type: ignore[assignment]
        headers = {}
        if config.site_url:
            headers["HTTP-Referer"] = config.site_url
        if config.app_name:
            headers["X-Title"] = config.app_name
        return headers

    def to_completion(self, data: Any) -> Any:
        self._raise_reported_error(data)
        return super().to_completion(data)

    def to_chunk(self, data: Any) -> Any:
        self._raise_reported_error(data)
        return super().to_chunk(data)

    def _raise_reported_error(self, answer: Any) -> None:
        """OpenRouter's failure after the answer started: ``{"error": {"code",
        "message"}, "choices": [{"finish_reason": "error", ...}]}``."""
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            raise self.reported_error(error)

    def reported_error(self, error: dict[str, Any]) -> ProviderError:
        code = error.get("code")
        kind = kind_for_status(code) if isinstance(code, int) else kind_for_type(code if isinstance(code, str)
                                                                                else None)
        return self.make_error(str(error.get("message") or "the upstream model failed"), kind=kind,
                               status=code if isinstance(code, int) else None,
                               code=code if isinstance(code, str) else None)

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        if response.status == 403 and _flagged(response.content):
            # "Your chosen model requires moderation and your input was flagged": a content filter.
            _, message = self.parse_error_body(response.content)
            return self.make_error(message, kind="content_filter", status=403, code="content_filter")
        return super().error_from_response(response)


def _flagged(content: bytes) -> bool:
    """Whether an error body is OpenRouter's moderation refusal (its ``metadata.flagged_input``)."""
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return False
    error = data.get("error") if isinstance(data, dict) else None
    metadata = error.get("metadata") if isinstance(error, dict) else None
    return isinstance(metadata, dict) and "flagged_input" in metadata


@hookimpl
def register_providers(register: Any) -> None:
    register(OpenRouterProvider)

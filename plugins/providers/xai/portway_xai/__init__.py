"""xAI provider: the Grok API's OpenAI-compatible Chat Completions and Embeddings.

Grok's reasoning models refuse ``presence_penalty``, ``frequency_penalty``
and ``stop``, and only ``grok-3-mini`` takes ``reasoning_effort``.  xAI
answers errors as ``{"code": <gRPC status text>, "error": <message>}`` and a
wrong API key with a 400, which the adapter classifies as an authentication
failure.  Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.errors import ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import refused
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"

#: What reasoning models answer with a 400 and that only steers: not sent (``stop``, which
#: changes the answer, is refused instead).
STEERING_ONLY = ("presence_penalty", "frequency_penalty")


def reasons(model: str) -> bool:
    """Whether ``model`` is one of Grok's reasoning models."""
    return model.startswith(("grok-3-mini", "grok-code")) or (model.startswith("grok-4")
                                                              and "non-reasoning" not in model)


class XAIProvider(OpenAICompatibleProvider):
    type = "xai"
    default_base_url = "https://api.x.ai/v1"
    env_key = "XAI_API_KEY"
    default_models = ("grok-4", "grok-4-fast-reasoning", "grok-4-fast-non-reasoning", "grok-code-fast-1", "grok-3",
                      "grok-3-mini")
    # https://docs.x.ai/docs/models: every chat model calls tools and has structured outputs; images for grok-4 and the vision models
    capabilities = {
        "grok-4*": {"tools", "vision", "json"},
        "grok-2-vision*": {"tools", "vision", "json"},
        "grok-3*": {"tools", "json"},
        "grok-code-*": {"tools", "json"},
    }

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str):
            return body
        thinking = reasons(model)
        if thinking and body.get("stop"):
            raise refused(self.name, "stop", f"Grok's reasoning model {model!r} takes no stop sequences")
        # The penalties only steer; a null or empty stop asks for nothing.
        unwanted = {key for key in (*STEERING_ONLY, "stop") if thinking and key in body}
        if "reasoning_effort" in body and not model.startswith("grok-3-mini"):
            unwanted.add("reasoning_effort")  # only grok-3-mini takes it; the others think as they do
        return {k: v for k, v in body.items() if k not in unwanted} if unwanted else body

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        _, message = self.parse_error_body(response.content)
        if response.status == 400 and message.startswith("Incorrect API key provided"):
            return self.make_error(message, kind="authentication", status=401, code="invalid_api_key")
        if response.status == 400 and "maximum prompt length" in message:
            return self.make_error(message, kind="context_length", status=400, code="context_length_exceeded")
        return super().error_from_response(response)


@hookimpl
def register_providers(register: Any) -> None:
    register(XAIProvider)

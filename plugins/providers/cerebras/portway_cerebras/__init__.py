"""Cerebras Inference: OpenAI-compatible Chat Completions at ``https://api.cerebras.ai/v1``.

Cerebras's differences from OpenAI, as :class:`~portway.quirks.Quirks`
(each with its source in the README):

- ``frequency_penalty``, ``presence_penalty`` and ``logit_bias`` are a 400
  upstream; they change the answer, so a request that sets one is refused
  (400 naming it) before anything is sent;
- ``parallel_tool_calls`` and ``service_tier`` are a 400 upstream too, but
  only steer: they are dropped;
- messages are ``system``, ``user``, ``assistant`` or ``tool``: a
  ``developer`` message is sent as ``system``;
- a reasoning model's text comes back as ``reasoning`` (mapped to
  ``reasoning_content``); an assistant message carrying ``reasoning_content``
  back is not sent with it (Cerebras's schema has no such field);
- there is no embeddings endpoint;
- error bodies are a bare ``{"message", "type", "param", "code"}`` object,
  and a request with no key is a 403 ``{"detail": "Not authenticated"}``.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl, serialization
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

#: Parameters Cerebras answers with a 400 and whose loss would change the answer.
REFUSED = {
    "frequency_penalty": "Cerebras does not support frequency_penalty",
    "presence_penalty": "Cerebras does not support presence_penalty",
    "logit_bias": "Cerebras does not support logit_bias",
}


class CerebrasProvider(OpenAICompatibleProvider):
    type = "cerebras"
    default_base_url = "https://api.cerebras.ai/v1"
    env_key = "CEREBRAS_API_KEY"
    default_models = ("llama3.1-8b", "llama-3.3-70b", "gpt-oss-120b", "qwen-3-32b",
                      "qwen-3-235b-a22b-instruct-2507", "zai-glm-4.6")
    quirks = Quirks(
        refuse=REFUSED,
        # A null/false one asks for nothing, but Cerebras refuses the key itself.
        drop=frozenset(REFUSED) | {"parallel_tool_calls", "service_tier"},
        developer_role=False,
        reasoning_in_history=False,
        reasoning_field="reasoning",
    )
    # Text-only models, all with tool calling and JSON mode.
    capabilities = {
        "llama3.1-*": {"tools", "json"},
        "llama-3.3-*": {"tools", "json"},
        "llama-4-*": {"tools", "json"},
        "gpt-oss-*": {"tools", "json"},
        "qwen-3-*": {"tools", "json"},
        "zai-glm-*": {"tools", "json"},
    }

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings")

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """Cerebras's bare error object is read by the base; its gateway's
        ``{"detail": "..."}`` (a request with no key) is read here."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("detail"), str) and "message" not in data:
            return None, data["detail"]
        return OpenAICompatibleProvider.parse_error_body(content)


@hookimpl
def register_providers(register: Any) -> None:
    register(CerebrasProvider)

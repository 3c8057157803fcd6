"""SambaNova Cloud: OpenAI-compatible Chat Completions and Embeddings at
``https://api.sambanova.ai/v1``.

SambaNova's differences from OpenAI, as :class:`~portway.quirks.Quirks`
(each with its source in the README):

- messages are ``system``, ``user``, ``assistant`` or ``tool``: a
  ``developer`` message is sent as ``system``;
- ``frequency_penalty`` and ``presence_penalty`` are accepted but "not
  currently implemented": they are dropped, so nothing pretends to apply them;
- there is no ``user`` parameter: dropped (it only labels the request);
- ``response_format: {"type": "text"}`` is "not supported yet": it asks for
  what no ``response_format`` gives, so it is not sent;
- a reasoning model (gpt-oss) returns its reasoning as ``reasoning``
  (mapped to ``reasoning_content``).
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

#: What SambaNova's function-calling page lists (tools and JSON mode).
TOOLS_AND_JSON = frozenset({"tools", "json"})


class SambaNovaProvider(OpenAICompatibleProvider):
    type = "sambanova"
    default_base_url = "https://api.sambanova.ai/v1"
    env_key = "SAMBANOVA_API_KEY"
    env_base_url = "SAMBA_NOVA_BASE_URL"
    default_models = ("Meta-Llama-3.3-70B-Instruct", "Llama-4-Maverick-17B-128E-Instruct", "DeepSeek-V3.1",
                      "DeepSeek-R1-0528", "gpt-oss-120b", "Qwen3-235B", "E5-Mistral-7B-Instruct")
    quirks = Quirks(
        drop=frozenset({"frequency_penalty", "presence_penalty", "user"}),
        developer_role=False,
        reasoning_field="reasoning",
    )
    capabilities = {
        "Llama-4-Maverick-*": TOOLS_AND_JSON | {"vision"},
        "Meta-Llama-3.3-70B-Instruct": TOOLS_AND_JSON,
        "Qwen3-235B*": TOOLS_AND_JSON,
        "gpt-oss-120b": TOOLS_AND_JSON,
        "DeepSeek-V3.1*": TOOLS_AND_JSON,
        "DeepSeek-V3.2*": TOOLS_AND_JSON,
        "MiniMax-M2*": TOOLS_AND_JSON,
        # Documented models without function calling; JSON mode is a request parameter of every model.
        "DeepSeek-R1*": {"json"},
        "Meta-Llama-3.1-8B-Instruct": {"json"},
        "Qwen3-32B": {"json"},
        "ALLaM-*": {"json"},
        "Llama-3.3-Swallow-*": {"json"},
    }

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "text":
            body = {k: v for k, v in body.items() if k != "response_format"}
        return body


@hookimpl
def register_providers(register: Any) -> None:
    register(SambaNovaProvider)

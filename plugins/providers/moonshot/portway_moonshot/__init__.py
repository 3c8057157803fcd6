"""Moonshot AI (Kimi): OpenAI-compatible Chat Completions at ``https://api.moonshot.ai/v1``.

Moonshot's differences from OpenAI, as :class:`~portway.quirks.Quirks`
(each with its source in the README):

- ``max_tokens`` is deprecated for ``max_completion_tokens`` (and not honoured
  by the Kimi K2.5+ models): it is sent as ``max_completion_tokens``;
- at most 5 choices (``n``);
- no ``tool_choice: "required"`` (a 400 naming it);
- JSON mode is ``json_object`` only: ``json_schema`` is a 400 naming it;
- messages are ``system``, ``user``, ``assistant`` (and ``tool`` results): a
  ``developer`` message is sent as ``system``;
- reasoning comes as ``reasoning_content`` (OpenAI's canonical name here) and
  must go back in the history for a thinking model's tool calls: it is kept;
- there is no embeddings endpoint.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

TOOLS_AND_JSON = frozenset({"tools", "json"})


class MoonshotProvider(OpenAICompatibleProvider):
    type = "moonshot"
    default_base_url = "https://api.moonshot.ai/v1"
    env_key = "MOONSHOT_API_KEY"
    default_models = ("kimi-k2.6", "kimi-k2.5", "kimi-k2-thinking", "kimi-k2-turbo-preview", "moonshot-v1-8k",
                      "moonshot-v1-32k", "moonshot-v1-128k", "moonshot-v1-8k-vision-preview")
    quirks = Quirks(
        rename={"max_tokens": "max_completion_tokens"},
        max_n=5,
        json_schema=False,
        tool_choice_required=False,
        developer_role=False,
    )
    capabilities = {
        "moonshot-v1-*-vision-preview": TOOLS_AND_JSON | {"vision"},
        "moonshot-v1-*": TOOLS_AND_JSON,
        "kimi-k2.5*": TOOLS_AND_JSON | {"vision"},
        "kimi-k2.6*": TOOLS_AND_JSON | {"vision"},
        "kimi-k2*": TOOLS_AND_JSON,
    }

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings")


@hookimpl
def register_providers(register: Any) -> None:
    register(MoonshotProvider)

"""vLLM provider: the OpenAI-compatible server of ``vllm serve``.

vLLM takes OpenAI's Chat Completions almost as it is; its differences are
where it puts a reasoning model's thinking: ``reasoning`` (since vLLM
0.11.1, vllm-project/vllm#27752; ``reasoning_content`` was removed in
#33402), in answers and in the assistant messages it reads back (it drops
a ``reasoning_content`` there, #38488).  No key is needed unless the
server was started with ``--api-key``.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class VLLMProvider(OpenAICompatibleProvider):
    type = "vllm"
    #: ``vllm serve`` listens on port 8000 (docs.vllm.ai, "OpenAI-Compatible Server").
    default_base_url = "http://127.0.0.1:8000/v1"
    #: A local server: no key unless ``--api-key`` was given (then set ``api_key``).
    env_key = None
    quirks = Quirks(reasoning_field="reasoning")

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """An assistant message's earlier reasoning goes back as ``reasoning``,
        the field vLLM reads (interleaved thinking needs it)."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not any(
                isinstance(m, dict) and "reasoning_content" in m for m in messages):
            return body
        out = dict(body)
        out["messages"] = [_reasoning_back(m) if isinstance(m, dict) and "reasoning_content" in m else m
                           for m in messages]
        return out


def _reasoning_back(message: dict[str, Any]) -> dict[str, Any]:
    message = dict(message)
    reasoning = message.pop("reasoning_content")
    if reasoning and "reasoning" not in message:
        message["reasoning"] = reasoning
    return message


@hookimpl
def register_providers(register: Any) -> None:
    register(VLLMProvider)

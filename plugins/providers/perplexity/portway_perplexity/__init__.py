"""Perplexity provider: the Sonar API's OpenAI-compatible Chat Completions.

Sonar answers from a web search: its answers carry ``citations`` and
``search_results`` beside the choices (passed on untouched), and it takes
search parameters of its own (passed through).  It wants user and assistant
turns to alternate, has no tools, no JSON object mode (JSON schema only)
and one choice.  Sources are in the README.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

_NO_LOGPROBS = "Perplexity returns no log probabilities"


class PerplexityProvider(OpenAICompatibleProvider):
    type = "perplexity"
    default_base_url = "https://api.perplexity.ai"
    env_key = "PERPLEXITY_API_KEY"
    default_models = ("sonar", "sonar-pro", "sonar-reasoning-pro", "sonar-deep-research")
    quirks = Quirks(
        refuse={"logprobs": _NO_LOGPROBS, "top_logprobs": _NO_LOGPROBS,
                "logit_bias": "Perplexity takes no logit_bias"},
        drop=frozenset({"seed", "user", "parallel_tool_calls", "tool_choice", "service_tier", "store", "metadata"}),
        rename={"max_completion_tokens": "max_tokens"},
        max_n=1,
        json_object=False,
        developer_role=False,
    )
    # https://docs.perplexity.ai/getting-started/models: no function calling; images in, JSON schema out
    capabilities = {"sonar*": {"vision", "json"}, "r1-1776": {"json"}}

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not _repeats_a_role(messages):
            return body
        return {**body, "messages": alternate(messages)}

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (the Sonar API has none)")


def _repeats_a_role(messages: list[Any]) -> bool:
    roles = [m.get("role") for m in messages if isinstance(m, dict) and m.get("role") != "system"]
    return any(a == b for a, b in zip(roles, roles[1:], strict=False))


def alternate(messages: list[Any]) -> list[Any]:
    """``messages`` with each run of user (or assistant) messages joined into
    one, as Perplexity wants them ("After the (optional) system message(s),
    user and assistant roles should be alternating")."""
    out: list[Any] = []
    for message in messages:
        previous = out[-1] if out else None
        if (isinstance(message, dict) and isinstance(previous, dict) and message.get("role") != "system"
                and message.get("role") == previous.get("role") and not message.get("tool_calls")
                and not previous.get("tool_calls")):
            out[-1] = {**previous, "content": _joined(previous.get("content"), message.get("content"))}
        else:
            out.append(message)
    return out


def _joined(first: Any, second: Any) -> Any:
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return _parts(first) + _parts(second)


def _parts(content: Any) -> list[Any]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if isinstance(content, str) and content else []


@hookimpl
def register_providers(register: Any) -> None:
    register(PerplexityProvider)

"""AI21 provider: Jamba chat completions (streamed or not).

AI21's chat API has OpenAI's shape with a smaller parameter set (AI21's
OpenAPI schema for ``POST /studio/v1/chat/completions``, mirrored in
``tryAGI/AI21`` ``src/libs/AI21/openapi.json``; the official SDK
``AI21Labs/ai21-python`` ``ai21/clients/studio/resources/chat/``): this
adapter is the shared :class:`~portway.formats.openai.OpenAICompatibleProvider`
with those differences as :class:`~portway.quirks.Quirks`, plus the answer's
missing ``object`` / ``created`` / ``model`` filled in.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks, refused

PORTWAY_PLUGIN_KIND = "provider"


class AI21Provider(OpenAICompatibleProvider):
    type = "ai21"
    default_base_url = "https://api.ai21.com/studio/v1"
    env_key = "AI21_API_KEY"
    env_base_url = "AI21_API_HOST"  # the SDK's variable, holding the same URL (ai21/ai21_env_config.py)
    default_models = ("jamba-large", "jamba-mini")
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        # Not in AI21's request schema; each only steers: a tie-breaker, an end-user id, OpenAI's
        # serving options, and whether several tools may be called in one turn.
        drop=frozenset({"seed", "user", "service_tier", "store", "parallel_tool_calls"}),
        # Not in AI21's request schema, and the answer would differ without them.
        refuse={"logprobs": "AI21 returns no log probabilities through this API",
                "top_logprobs": "AI21 returns no log probabilities through this API",
                "logit_bias": "AI21 has no logit_bias",
                "frequency_penalty": "AI21's chat API has no frequency_penalty",
                "presence_penalty": "AI21's chat API has no presence_penalty",
                "reasoning_effort": "AI21's chat API has no reasoning_effort"},
        max_n=16,               # "Range: 1 – 16"
        json_schema=False,      # response_format is text or json_object only
        stream_options=False,   # not in the schema; the usage comes on the last chunk anyway
        tool_choice_required=False,  # no tool_choice at all (see prepare)
        tool_choice_named=False,
        developer_role=False,   # roles: system, user, assistant, tool
        message_names=False,    # messages carry role and content (and tool_calls / tool_call_id)
        text_as_string=True,    # content is a string in every message
    )
    #: Jamba models read text only; all take tools and JSON mode (AI21's model pages and the
    #: request schema: content is a string, tools and response_format are there for every model).
    capabilities = {"jamba-*": ("tools", "json")}

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """After the quirks (``body`` is already a copy): ``tool_choice`` and
        ``n`` with a stream, which AI21 cannot take."""
        choice = body.pop("tool_choice", None)
        if choice not in (None, "auto"):  # "auto" is what AI21 does anyway
            raise refused(self.name, "tool_choice", "AI21's chat API has no tool_choice (the model always chooses)")
        n = body.get("n")
        if body.get("stream") and isinstance(n, int) and n > 1:
            raise refused(self.name, "n", "AI21 streams one choice only (n must be 1 with stream)")
        return body

    # -- the answer: AI21's has no object, created or model --------------------------------

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return _filled(await super().chat(body, ctx), "chat.completion", body.get("model"))

    async def chat_stream_batches(self, body: dict[str, Any], ctx: Any) -> AsyncIterator[list[dict[str, Any]]]:
        model = body.get("model")
        async with aclosing(super().chat_stream_batches(body, ctx)) as batches:
            async for batch in batches:
                yield [_filled(chunk, "chat.completion.chunk", model) for chunk in batch]

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (AI21's API has none for Jamba)")


def _filled(answer: dict[str, Any], kind: str, model: Any) -> dict[str, Any]:
    answer.setdefault("object", kind)
    answer.setdefault("created", int(time.time()))
    if isinstance(model, str):
        answer.setdefault("model", model)
    return answer


@hookimpl
def register_providers(register: Any) -> None:
    register(AI21Provider)

"""LM Studio provider: the OpenAI-compatible endpoints of LM Studio's local
server (``lms server start``).

LM Studio documents which Chat Completions parameters it reads
(lmstudio-ai/docs ``1_developer/3_openai-compat/chat-completions.md``:
model, top_p, top_k, messages, temperature, max_tokens, stream, stop,
presence_penalty, frequency_penalty, logit_bias, repeat_penalty, seed; and
``response_format`` json_schema, ``tools``, ``tool_choice`` auto / none /
required, ``stream_options`` from the API changelog).  So:

- ``max_completion_tokens`` is sent as ``max_tokens``;
- ``n`` (one choice only), ``logprobs`` (none are returned), a
  ``json_object`` response format (only ``json_schema`` and ``text``) and a
  named ``tool_choice`` are refused, as their loss would change the answer;
- ``user`` and ``parallel_tool_calls`` are dropped (they only steer);
- a ``developer`` message is sent as ``system`` (the model's prompt template
  renders the messages);
- a model's reasoning comes back as ``reasoning`` (gpt-oss, since 0.3.23) or,
  with the "separate reasoning_content" setting, as ``reasoning_content``:
  both reach the client as ``reasoning_content``.

No key is needed unless server authentication is on (LM Studio 0.4.0,
API tokens sent as ``Authorization: Bearer``).
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"


class LMStudioProvider(OpenAICompatibleProvider):
    type = "lmstudio"
    #: ``lms server start`` listens on port 1234 (lmstudio-ai/docs, openai-compat index).
    default_base_url = "http://127.0.0.1:1234/v1"
    #: A local server: no key unless authentication is on (then set ``api_key`` to an API token).
    env_key = None
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        max_n=1,
        refuse={"logprobs": "LM Studio returns no logprobs", "top_logprobs": "LM Studio returns no logprobs"},
        drop=frozenset({"user", "parallel_tool_calls"}),
        json_object=False,
        tool_choice_named=False,
        developer_role=False,
        reasoning_field="reasoning",
    )


@hookimpl
def register_providers(register: Any) -> None:
    register(LMStudioProvider)

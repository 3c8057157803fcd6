"""DashScope provider: Qwen on Alibaba Cloud Model Studio, through its
OpenAI-compatible mode (``/compatible-mode/v1``).

What differs from OpenAI, from Model Studio's reference ("OpenAI compatible
- Chat", "Deep thinking", "OpenAI compatible - Embedding", "Status codes"):

- the region picks the host (Singapore ``dashscope-intl``, US Virginia
  ``dashscope-us``, China Beijing ``dashscope``); keys are per region;
- a model that thinks (``enable_thinking: true``, a thinking-only model
  such as ``qwq-plus`` or ``*-thinking-*``, or an open-source Qwen3 model,
  which thinks by default) can only stream: a non-streamed request for one
  is a 400 ("parameter.enable_thinking must be set to false for
  non-streaming calls").  This adapter streams such a request upstream and
  assembles the answer, thinking (``reasoning_content``) included;
- ``n`` is at most 4; ``tool_choice`` is "auto", "none" or a named function
  (no "required"); the roles are system, user, assistant and tool (a
  ``developer`` message is sent as ``system``); ``user`` is not a parameter
  (dropped);
- embeddings take ``encoding_format: float`` only: a base64 request is sent
  as float and encoded here;
- a request or answer blocked by content moderation is a 400
  ``data_inspection_failed`` (``DataInspectionFailed``): kind
  ``content_filter``; an account in arrears (``Arrearage``): ``billing``.
"""

from __future__ import annotations

import base64
import fnmatch
import re
import struct
from contextlib import aclosing
from typing import Any, Literal

from portway import hookimpl
from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.formats.openai import OpenAICompatibleProvider, StreamAssembler
from portway.providers import retry_after
from portway.quirks import Quirks
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"

REGIONS = {
    "intl": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",  # Singapore
    "us": "https://dashscope-us.aliyuncs.com/compatible-mode/v1",  # US (Virginia)
    "cn": "https://dashscope.aliyuncs.com/compatible-mode/v1",  # China (Beijing)
}
#: Models that always think (and so only stream).
THINKING_ONLY = ("qwq-*", "qvq-*", "*-thinking*", "deepseek-r1*")
#: Open-source hybrid Qwen3 models (qwen3-32b, qwen3-235b-a22b, ...): thinking is on unless turned off.
THINKS_BY_DEFAULT = re.compile(r"qwen3-\d+(\.\d+)?b(-a\d+b)?$")
#: Error codes whose kind the status does not say.
ERROR_KINDS = {"data_inspection_failed": "content_filter", "DataInspectionFailed": "content_filter",
               "Arrearage": "billing"}


class DashScopeConfig(ProviderConfig):
    #: Which Model Studio region's endpoint (and keys): ``intl`` (Singapore), ``us`` (Virginia), ``cn`` (Beijing).
    region: Literal["intl", "us", "cn"] = "intl"


class DashScopeProvider(OpenAICompatibleProvider):
    type = "dashscope"
    config_model = DashScopeConfig
    default_base_url = REGIONS["intl"]
    env_key = "DASHSCOPE_API_KEY"
    default_models = ("qwen-max", "qwen-plus", "qwen-flash", "qwen-turbo", "qwen3-max", "qwen3-coder-plus",
                      "qwq-plus", "qwen3-32b", "qwen-vl-max", "text-embedding-v4", "text-embedding-v3")
    capabilities = {
        "qwen-max*": {"tools", "json"}, "qwen-plus*": {"tools", "json"}, "qwen-turbo*": {"tools", "json"},
        "qwen-flash*": {"tools", "json"}, "qwen3-max*": {"tools", "json"}, "qwen3-coder-*": {"tools", "json"},
        "qwq-*": {"tools"},  # thinking models have no JSON mode
    }
    quirks = Quirks(max_n=4, tool_choice_required=False, developer_role=False, drop=frozenset({"user"}))

    def __init__(self, name: str, config: ProviderConfig) -> None:
        region = getattr(config, "region", "intl")
        if not config.base_url:
            config = config.model_copy(update={"base_url": REGIONS[region]})
        super().__init__(name, config)

    async def chat(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if not thinks(body):
            return await super().chat(body, ctx)
        # A thinking model answers streams only: stream, and assemble the whole answer.
        assembler = StreamAssembler()
        streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with aclosing(self.chat_stream_batches(streamed, ctx)) as batches:
            async for batch in batches:
                for chunk in batch:
                    assembler.add(chunk)
        return assembler.result()

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if body.get("encoding_format") != "base64":
            return await super().embeddings(body, ctx)
        answer = await super().embeddings({**body, "encoding_format": "float"}, ctx)
        for item in answer["data"]:
            vector = item["embedding"]
            if isinstance(vector, list):
                try:
                    item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                except struct.error:
                    raise self.malformed("an embedding is not a list of numbers") from None
        return answer

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        code, message = self.parse_error_body(response.content)
        kind = ERROR_KINDS.get(code or "")
        if kind is None or response.status < 400:
            return super().error_from_response(response)
        return self.make_error(message, kind=kind, status=response.status, code=code,
                               retry_after=retry_after(response.headers))


def thinks(body: dict[str, Any]) -> bool:
    """Whether a non-streamed ``body`` asks a model that thinks (and so must stream)."""
    if body.get("stream"):
        return False
    model = str(body.get("model") or "").lower()
    if any(fnmatch.fnmatchcase(model, pattern) for pattern in THINKING_ONLY):
        return True
    enabled = body.get("enable_thinking")
    return enabled is True or (enabled is None and THINKS_BY_DEFAULT.match(model) is not None)


@hookimpl
def register_providers(register: Any) -> None:
    register(DashScopeProvider)

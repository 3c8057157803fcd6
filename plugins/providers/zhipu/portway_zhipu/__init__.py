"""Zhipu provider: GLM models on Zhipu AI's BigModel open platform
(``https://open.bigmodel.cn/api/paas/v4``) or Z.ai
(``https://api.z.ai/api/paas/v4``), the same API under two hosts.

The API is shaped like OpenAI's Chat Completions, with the parameters of
the official SDKs (zhipuai ``api_resource/chat/completions.py``, zai-sdk):
``model``, ``messages``, ``request_id``, ``user_id``, ``do_sample``,
``stream``, ``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``
(a single stop word), ``tools``, ``tool_choice`` (only "auto"),
``response_format`` (``json_object``), ``thinking``.  So:

- ``max_completion_tokens`` is sent as ``max_tokens``, ``user`` as ``user_id``;
- ``n`` > 1, ``logprobs``, ``logit_bias``, JSON-schema output, a
  ``tool_choice`` other than auto/none, and more than one stop word are
  refused (400 naming the field); ``frequency_penalty``,
  ``presence_penalty``, ``parallel_tool_calls`` and ``stream_options`` are
  dropped (they only steer; the usage comes on the last chunk regardless);
- ``tool_choice: "none"`` is sent as no tools at all;
- a ``developer`` message is sent as ``system``; messages carry no ``name``;
- GLM puts a stream's usage on its last content chunk (the gateway relays
  it as a chunk of its own, as OpenAI sends it);
- business error codes (docs.z.ai/api-reference/api-code) the status does
  not say: 1113 (account in arrears, a 429) is ``billing``, 1301 (unsafe
  content) is ``content_filter``.
"""

from __future__ import annotations

from typing import Any, Literal

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.openai import OpenAICompatibleProvider
from portway.providers import Provider
from portway.quirks import Quirks, refused

PORTWAY_PLUGIN_KIND = "provider"

REGIONS = {"cn": "https://open.bigmodel.cn/api/paas/v4", "intl": "https://api.z.ai/api/paas/v4"}
#: Business codes translated into the vocabulary the gateway classifies by.
ERROR_CODES = {"1113": "insufficient_quota", "1301": "content_filter"}


class ZhipuConfig(ProviderConfig):
    #: ``cn``: Zhipu AI BigModel (open.bigmodel.cn); ``intl``: Z.ai (api.z.ai). Keys belong to one of them.
    region: Literal["cn", "intl"] = "cn"


class ZhipuProvider(OpenAICompatibleProvider):
    type = "zhipu"
    config_model = ZhipuConfig
    default_base_url = REGIONS["cn"]
    #: The variable of Zhipu's own SDK (zhipuai); Z.ai's SDK reads ZAI_API_KEY (set api_key from it).
    env_key = "ZHIPUAI_API_KEY"
    #: The zhipuai SDK's base-URL variable (``ZhipuAI()`` reads both).
    env_base_url = "ZHIPUAI_BASE_URL"
    default_models = ("glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-flash", "glm-4.5v", "glm-4-plus",
                      "glm-4-flash", "embedding-3")
    capabilities = {
        **dict.fromkeys(("glm-4.7", "glm-4.6", "glm-4.5", "glm-4.5-air*", "glm-4.5-flash", "glm-4.5-x",
                         "glm-4-plus", "glm-4-air*", "glm-4-flash*"), {"tools", "json"}),
        "glm-4v*": {"vision"},
    }
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens", "user": "user_id"},
        max_n=1,
        refuse={"logprobs": "GLM returns no logprobs", "logit_bias": "GLM takes no logit_bias"},
        drop=frozenset({"frequency_penalty", "presence_penalty", "parallel_tool_calls"}),
        json_schema=False,
        stream_options=False,
        tool_choice_required=False,
        tool_choice_named=False,
        developer_role=False,
        message_names=False,
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not config.base_url:
            config = config.model_copy(update={"base_url": REGIONS[getattr(config, "region", "cn")]})
        super().__init__(name, config)

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 1:
            raise refused(self.name, "stop", "GLM takes a single stop word")
        if body.get("tool_choice") == "none":  # GLM knows only "auto": no tools is how to say none
            body = {key: value for key, value in body.items() if key not in ("tools", "tool_choice")}
        return body

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        code, message = Provider.parse_error_body(content)
        return ERROR_CODES.get(code or "", code), message


@hookimpl
def register_providers(register: Any) -> None:
    register(ZhipuProvider)

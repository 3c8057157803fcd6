"""SiliconFlow provider: ``https://api.siliconflow.cn/v1`` (China) or
``https://api.siliconflow.com/v1`` (international), OpenAI-shaped.

SiliconFlow's API reference ("创建对话请求(OpenAI)", docs.siliconflow.cn
``api-reference/chat-completions``) lists the chat parameters: model,
messages, stream, max_tokens, enable_thinking, thinking_budget,
reasoning_effort, min_p, stop (up to 4), temperature, top_p, top_k,
frequency_penalty, n, response_format (``text`` / ``json_object``), tools.
So:

- ``max_completion_tokens`` is sent as ``max_tokens``;
- ``logprobs``, ``logit_bias``, JSON-schema output and a ``tool_choice`` of
  "required" or a named function are refused (400 naming the field);
- ``seed``, ``presence_penalty``, ``user`` and ``parallel_tool_calls`` are
  dropped (they only steer);
- a ``developer`` message is sent as ``system``;
- reasoning models answer with ``reasoning_content``.

Rerank is SiliconFlow's ``POST /rerank`` (``api-reference/rerank``: model,
query, documents as strings, top_n; results with ``index`` and
``relevance_score``, and a ``tokens`` count).

Errors are ``{"code": <number>, "message", "data"}`` (docs.siliconflow.cn
``faqs/error-code``), a 401 a bare text: both keep their message, the kind
comes from the status.
"""

from __future__ import annotations

from typing import Any, Literal

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats import MalformedAnswer
from portway.formats.openai import OpenAICompatibleProvider
from portway.formats.rerank import check_rerank, document_texts
from portway.quirks import Quirks

PORTWAY_PLUGIN_KIND = "provider"

REGIONS = {"cn": "https://api.siliconflow.cn/v1", "intl": "https://api.siliconflow.com/v1"}


class SiliconFlowConfig(ProviderConfig):
    #: ``cn``: api.siliconflow.cn; ``intl``: api.siliconflow.com (keys are per site).
    region: Literal["cn", "intl"] = "cn"


class SiliconFlowProvider(OpenAICompatibleProvider):
    type = "siliconflow"
    config_model = SiliconFlowConfig
    default_base_url = REGIONS["cn"]
    env_key = "SILICONFLOW_API_KEY"
    default_models = ("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-8B", "Qwen/Qwen3-32B",
                      "Qwen/Qwen2.5-72B-Instruct", "zai-org/GLM-4.6", "moonshotai/Kimi-K2-Instruct",
                      "Qwen/Qwen2.5-VL-72B-Instruct", "BAAI/bge-m3", "Qwen/Qwen3-Embedding-8B")
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        refuse={"logprobs": "SiliconFlow returns no logprobs", "logit_bias": "SiliconFlow takes no logit_bias"},
        drop=frozenset({"seed", "presence_penalty", "user", "parallel_tool_calls"}),
        json_schema=False,
        tool_choice_required=False,
        tool_choice_named=False,
        developer_role=False,
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        if not config.base_url:
            config = config.model_copy(update={"base_url": REGIONS[getattr(config, "region", "cn")]})
        super().__init__(name, config)

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        documents = document_texts(body)
        wire = {"model": body["model"], "query": body["query"], "documents": documents,
                **({"top_n": body["top_n"]} if body.get("top_n") is not None else {})}
        response = await self.http.request("POST", "/rerank", json=wire)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            check_rerank(data, len(documents))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None
        answer: dict[str, Any] = {"results": [{"index": r["index"], "relevance_score": r["relevance_score"]}
                                              for r in data["results"]]}
        if isinstance(data.get("id"), str):
            answer["id"] = data["id"]
        tokens = data.get("tokens")
        if isinstance(tokens, dict) and isinstance(tokens.get("input_tokens"), int):
            answer["usage"] = {"total_tokens": tokens["input_tokens"]}
        return answer


@hookimpl
def register_providers(register: Any) -> None:
    register(SiliconFlowProvider)

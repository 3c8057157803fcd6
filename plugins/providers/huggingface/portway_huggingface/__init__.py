"""Hugging Face provider: the Inference Providers router
(``https://router.huggingface.co/v1``, OpenAI-compatible chat), a TGI
endpoint's OpenAI-compatible ``/v1/chat/completions`` through ``base_url``,
and embeddings through a TEI endpoint's native ``/embed``.

Chat is the shared :class:`~portway.formats.openai.OpenAICompatibleProvider`
with Hugging Face's differences as :class:`~portway.quirks.Quirks`;
embeddings speak TEI's own format (``{"inputs", "normalize", "truncate"}``
in, a list of vectors out).
"""

from __future__ import annotations

import base64
import math
import os
import struct
from typing import Any

from pydantic import Field

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats import MalformedAnswer
from portway.formats.openai import OpenAICompatibleProvider
from portway.quirks import Quirks
from portway.upstream import UpstreamResponse

PORTWAY_PLUGIN_KIND = "provider"

#: TGI's and TEI's status for a model that failed to generate or embed
#: (``error_type`` ``generation`` / ``backend``): the model failed, not the request.
MODEL_FAILED = 424


class HuggingFaceConfig(ProviderConfig):
    #: The Inference Providers policy or provider appended to model ids that
    #: name none (``fastest``, ``cheapest``, ``cerebras``, ``together``...).
    #: None: the router's default.  Not for TGI endpoints.
    route: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    #: A TEI endpoint's root URL: embeddings go to ``{embeddings_url}/embed``
    #: with this provider's token.  None: embeddings are refused.
    embeddings_url: str | None = None
    #: TEI's ``normalize`` (L2-normalised vectors; TEI's default).
    normalize: bool = True
    #: TEI's ``truncate``: cut inputs longer than the model's limit instead
    #: of refusing them (TEI's default is to refuse).
    truncate: bool = False


class HuggingFaceProvider(OpenAICompatibleProvider):
    type = "huggingface"
    config_model = HuggingFaceConfig
    default_base_url = "https://router.huggingface.co/v1"
    #: huggingface_hub's variable (``constants.HF_TOKEN``); the legacy
    #: ``HUGGING_FACE_HUB_TOKEN`` is read after it.
    env_key = "HF_TOKEN"
    default_models = ("meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
                      "Qwen/Qwen3-235B-A22B", "Qwen/Qwen2.5-VL-7B-Instruct", "deepseek-ai/DeepSeek-R1",
                      "deepseek-ai/DeepSeek-V3", "google/gemma-3-27b-it", "openai/gpt-oss-120b")
    # The chat-completion spec of the router and TGI (huggingface.js tasks/chat-completion/spec/input.json,
    # rendered in hub-docs docs/inference-providers/tasks/chat-completion.md) has no n,
    # max_completion_tokens, logit_bias, user, parallel_tool_calls or developer role.
    quirks = Quirks(
        rename={"max_completion_tokens": "max_tokens"},
        max_n=1,
        refuse={"logit_bias": "the Hugging Face chat-completion API has no logit_bias"},
        drop=frozenset({"user", "parallel_tool_calls", "service_tier", "store", "metadata", "prompt_cache_key",
                        "safety_identifier", "verbosity", "reasoning_effort", "modalities", "prediction"}),
        developer_role=False,
    )

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if self.api_key is None and config.api_key is None:
            self.api_key = os.environ.get("HUGGING_FACE_HUB_TOKEN") or None

    @property
    def settings(self) -> HuggingFaceConfig:
        return self.config  # type: ignore[return-value]

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        route = self.settings.route
        model = body.get("model")
        if route and isinstance(model, str) and ":" not in model:
            return {**body, "model": f"{model}:{route}"}
        return body

    def error_from_response(self, response: UpstreamResponse) -> ProviderError:
        """TGI/TEI's ``{"error", "error_type"}``: a 424 is the model failing
        (retryable); a 503 "model is currently loading" gives its
        ``estimated_time`` as the retry hint when no ``Retry-After`` came."""
        error = super().error_from_response(response)
        if response.status == MODEL_FAILED:
            error.kind = "server_error"
        if error.retry_after is None and response.status in (429, 503):
            estimate = _estimated_time(response.content)
            if estimate is not None:
                error.retry_after = str(estimate)
        return error

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """TEI's ``POST /embed``: ``{"inputs": [...], "normalize", "truncate"}``
        answered by one vector per input (TEI serves one model: ``model``
        only names the answer)."""
        url = self.settings.embeddings_url
        if not url:
            raise self.unsupported("embeddings without an embeddings_url (a TEI endpoint)")
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise PortwayError("TEI's /embed takes input as a string or a list of strings here", kind="bad_request",
                               code="unsupported", param="input")
        if body.get("dimensions") is not None:
            raise PortwayError("TEI's /embed cannot shorten vectors to dimensions", kind="bad_request",
                               code="unsupported", param="dimensions")
        if body.get("encoding_format") not in (None, "float", "base64"):
            raise PortwayError("encoding_format must be float or base64", kind="bad_request", param="encoding_format")
        payload = {"inputs": texts, "normalize": body.get("normalize", self.settings.normalize),
                   "truncate": body.get("truncate", self.settings.truncate)}
        response = await self.http.request("POST", url.rstrip("/") + "/embed", json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        try:
            vectors = serialization.loads(response.content)
        except serialization.JSONDecodeError:
            raise self.malformed("the body is not JSON") from None
        if isinstance(vectors, dict) and "error" in vectors:
            raise self.error_from_response(UpstreamResponse(502, response.headers, response.content))
        try:
            return tei_embeddings(vectors, len(texts), body["model"], body.get("encoding_format") == "base64",
                                  response.headers.get("x-compute-tokens"))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


def _estimated_time(content: bytes) -> int | None:
    try:
        data = serialization.loads(content)
    except serialization.JSONDecodeError:
        return None
    value = data.get("estimated_time") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 86_400:
        return max(1, math.ceil(value))
    return None


def tei_embeddings(vectors: Any, count: int, model: str, as_base64: bool, tokens: str | None) -> dict[str, Any]:
    """TEI's answer (a list of vectors, one per input) as an OpenAI
    embeddings ``list``; usage from TEI's ``x-compute-tokens`` header."""
    if not isinstance(vectors, list) or len(vectors) != count:
        raise MalformedAnswer(f"the answer is not a list of {count} vectors")
    data = []
    for index, vector in enumerate(vectors):
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
            raise MalformedAnswer(f"vector {index} is not a list of numbers")
        floats = [float(x) for x in vector]
        data.append({"object": "embedding", "index": index, "embedding": base64.b64encode(
            struct.pack(f"<{len(floats)}f", *floats)).decode() if as_base64 else floats})
    used = int(tokens) if tokens is not None and tokens.isdigit() else 0
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}


@hookimpl
def register_providers(register: Any) -> None:
    register(HuggingFaceProvider)

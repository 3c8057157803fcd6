"""Cloudflare Workers AI provider.

Chat and embeddings go to the OpenAI-compatible endpoints under the
account, ``/ai/v1/chat/completions`` and ``/ai/v1/embeddings`` (the shared
:class:`~portway.formats.openai.OpenAICompatibleProvider`, with Workers AI's
differences stated below).  Rerank, which the compatible endpoints do not
serve (they cover text generation and text embeddings only), goes to the
native ``/ai/run/{model}`` and its ``{"result", "success", "errors"}``
envelope.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from portway import hookimpl, serialization
from portway.config import ProviderConfig
from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway.formats.openai import OpenAICompatibleProvider
from portway.formats.rerank import check_rerank, document_texts
from portway.quirks import refused

PORTWAY_PLUGIN_KIND = "provider"

API_ROOT = "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai"
#: The rerankers in the Workers AI catalog (task "Text Classification", reranker models).
DEFAULT_RERANK_MODEL = "@cf/baai/bge-reranker-base"


class CloudflareConfig(ProviderConfig):
    #: The Cloudflare account (``$CLOUDFLARE_ACCOUNT_ID`` when not given);
    #: it goes in the URL.  Not needed when ``base_url`` is given.
    account_id: str | None = None


class CloudflareProvider(OpenAICompatibleProvider):
    type = "cloudflare"
    config_model = CloudflareConfig
    #: ``base_url`` is the account's ``/ai`` root; ``{account_id}`` is filled in.
    default_base_url = API_ROOT
    env_key = "CLOUDFLARE_API_TOKEN"
    chat_path = "/v1/chat/completions"
    embeddings_path = "/v1/embeddings"
    default_models = ("@cf/meta/llama-3.3-70b-instruct-fp8-fast", "@cf/meta/llama-3.1-8b-instruct",
                      "@cf/meta/llama-4-scout-17b-16e-instruct", "@cf/openai/gpt-oss-120b",
                      "@cf/openai/gpt-oss-20b", "@cf/qwen/qwq-32b", "@cf/google/gemma-3-12b-it",
                      "@hf/nousresearch/hermes-2-pro-mistral-7b", "@cf/baai/bge-large-en-v1.5",
                      "@cf/baai/bge-base-en-v1.5", "@cf/baai/bge-m3", DEFAULT_RERANK_MODEL)
    # Only models whose whole capability set the docs state (workers-ai/features/json-mode.mdx lists the
    # JSON-mode models; function-calling/index.mdx names hermes-2-pro as the function-calling model).
    # Text-only models: images are refused.  Other models are not checked.
    capabilities = {
        "@hf/nousresearch/hermes-2-pro-mistral-7b": {"tools", "json"},
        "@cf/meta/llama-3-8b-instruct": {"json"},
        "@hf/thebloke/deepseek-coder-6.7b-instruct-awq": {"json"},
        "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b": {"json"},
    }

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        #: Why this instance cannot send anything (no usable account), or None.
        self.account_problem: str | None = None
        if "{account_id}" in self.base_url:
            account = (self.settings.account_id or os.environ.get("CLOUDFLARE_ACCOUNT_ID") or "").strip()
            if not account or not account.replace("-", "").isalnum():
                # Not raised here: an instance enabled from CLOUDFLARE_API_TOKEN alone must not stop the
                # gateway from starting; each request says what is missing instead.
                self.account_problem = (f"provider {name!r} needs an account_id (letters, digits and '-'; or "
                                        "CLOUDFLARE_ACCOUNT_ID), or a base_url")
            else:
                self.base_url = self.base_url.replace("{account_id}", account)

    @property
    def settings(self) -> CloudflareConfig:
        return self.config  # type: ignore[return-value]

    def _checked(self, path: str) -> str:
        if self.account_problem is not None:
            raise PortwayError(self.account_problem, kind="unavailable", param="account_id")
        return path

    def chat_url(self, body: dict[str, Any]) -> str:
        return self._checked(self.chat_path)

    def embeddings_url(self, body: dict[str, Any]) -> str:
        return self._checked(self.embeddings_path)

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Workers AI's JSON mode does not stream (json-mode.mdx: "JSON Mode
        currently doesn't support streaming"): such a request is a 400
        naming ``response_format`` rather than an answer that ignores it."""
        response_format = body.get("response_format")
        if body.get("stream") and isinstance(response_format, dict) and \
                response_format.get("type") in ("json_object", "json_schema"):
            raise refused(self.name, "response_format", "Workers AI's JSON mode does not stream")
        return body

    @staticmethod
    def parse_error_body(content: bytes) -> tuple[str | None, str]:
        """The Cloudflare API envelope's first error (``{"errors": [{"code",
        "message"}], "success": false}``), else the usual shapes."""
        try:
            data = serialization.loads(content)
        except serialization.JSONDecodeError:
            data = None
        errors = data.get("errors") if isinstance(data, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            return (str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None,
                    str(first.get("message") or first))
        return OpenAICompatibleProvider.parse_error_body(content)

    def run_path(self, model: str) -> str:
        """``/run/{model}``: the model's own path segments (``@cf/baai/...``)."""
        if not model or any(part in ("", ".", "..") for part in model.split("/")):
            raise PortwayError(f"{model!r} is not a Workers AI model name", kind="bad_request", param="model")
        return self._checked("/run/" + quote(model, safe="@/"))

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        """A reranker model by ``/ai/run/{model}``: ``{"query", "contexts":
        [{"text"}], "top_k"}`` in, ``result.response: [{"id", "score"}]`` out
        (workers-types ``Ai_Cf_Baai_Bge_Reranker_Base_Input`` / ``_Output``)."""
        texts = document_texts(body)
        payload: dict[str, Any] = {"query": body["query"], "contexts": [{"text": text} for text in texts]}
        if body.get("top_n") is not None:
            payload["top_k"] = body["top_n"]
        response = await self.http.request("POST", self.run_path(body["model"]), json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        data = self.answer_json(response)
        try:
            return check_rerank({"results": run_rerank_results(data)}, len(texts))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    def answer_json(self, response: Any) -> Any:
        """A 200 whose envelope says ``success: false`` is an error too."""
        data = super().answer_json(response)
        if isinstance(data, dict) and data.get("success") is False:
            code, message = self.parse_error_body(response.content)
            raise self.make_error(message, kind="server_error", status=502, code=code)
        return data


def run_rerank_results(data: Any) -> list[dict[str, Any]]:
    """``{"result": {"response": [{"id", "score"}]}}`` as canonical results."""
    result = data.get("result") if isinstance(data, dict) else None
    ranked = result.get("response") if isinstance(result, dict) else None
    if not isinstance(ranked, list):
        raise MalformedAnswer("result.response is missing or not a list")
    out = []
    for i, item in enumerate(ranked):
        if not isinstance(item, dict):
            raise MalformedAnswer(f"result.response[{i}] is not an object")
        out.append({"index": item.get("id"), "relevance_score": item.get("score")})
    return out


@hookimpl
def register_providers(register: Any) -> None:
    register(CloudflareProvider)

"""Lambda provider: the Lambda Inference API, ``https://api.lambda.ai/v1``.

Lambda documents it as a drop-in replacement for OpenAI's API
(docs.lambda.ai/public-cloud/lambda-inference-api) with three endpoints:
``/chat/completions``, ``/completions`` and ``/models``, a Lambda Cloud
API key as a bearer token, and image input for some models (the Llama 4
variants).  It has no embeddings endpoint, so embeddings are a clear 400.

Lambda has sunset the service (the same page: "The Lambda Inference API has
been sunsetted"); this adapter is for deployments that still reach it, or a
compatible endpoint set as ``base_url``.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.openai import OpenAICompatibleProvider

PORTWAY_PLUGIN_KIND = "provider"


class LambdaProvider(OpenAICompatibleProvider):
    type = "lambda"
    default_base_url = "https://api.lambda.ai/v1"
    env_key = "LAMBDA_API_KEY"
    default_models = ("llama-4-maverick-17b-128e-instruct-fp8", "llama-4-scout-17b-16e-instruct",
                      "llama3.3-70b-instruct-fp8", "llama3.1-8b-instruct", "deepseek-v3-0324", "deepseek-r1-0528",
                      "qwen3-32b-fp8", "hermes3-405b", "hermes3-70b")

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        raise self.unsupported("embeddings (the Lambda Inference API has chat completions and completions only)")


@hookimpl
def register_providers(register: Any) -> None:
    register(LambdaProvider)

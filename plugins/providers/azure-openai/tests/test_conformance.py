"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Azure OpenAI resource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portway_azure_openai.testing import AzureOpenAIAPI

from portway.testing import conformance

KEY = "azure-conformance-key-0123456789"


def fake(steps: Sequence[Any]) -> AzureOpenAIAPI:
    return AzureOpenAIAPI(steps, api_key=KEY, deployments=["test-model", "text-embedding-3-small"])


AZURE = conformance.Conformance(
    provider="azure-openai",
    config=lambda url: {"type": "azure-openai", "base_url": url, "api_key": KEY},
    fake=fake,
    model="test-model",
    features=frozenset({"chat", "system", "developer", "multi_turn", "tools", "stream_tools", "vision_url", "vision_base64", "json_object",
                        "json_schema", "embeddings", "anthropic_ingress", "usage_in_stream"}),
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped"},
    embeddings_model="text-embedding-3-small",
)


test_conformance = conformance.conformance_tests(AZURE)

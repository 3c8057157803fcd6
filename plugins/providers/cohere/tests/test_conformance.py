"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Cohere v2 API."""

from __future__ import annotations

from portway_cohere.testing import CohereAPI

from portway.testing import conformance

KEY = "co-conformance-key-0123456789"

COHERE = conformance.Conformance(
    provider="cohere",
    config=lambda url: {"type": "cohere", "base_url": url, "api_key": KEY},
    fake=lambda steps: CohereAPI(steps, api_key=KEY),
    model="command-a-03-2025",
    features=frozenset({"chat", "system", "developer", "multi_turn", "tools", "stream_tools", "vision_url", "vision_base64", "json_object",
                        "json_schema", "embeddings", "anthropic_ingress", "usage_in_stream", "rerank"}),
    # top_p is mapped to p, clamped into Cohere's [0.01, 0.99].
    params={"max_tokens": "mapped", "stop": "mapped", "temperature": "mapped", "top_p": "mapped", "seed": "mapped"},
    embeddings_model="embed-v4.0",
    rerank_model="rerank-v3.5",
)


test_conformance = conformance.conformance_tests(COHERE)

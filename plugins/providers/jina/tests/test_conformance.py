"""The provider conformance kit (``portway.testing.conformance``) run against
the fake Jina AI API: embeddings and rerank (Jina AI has no chat, so the kit
skips its chat checks and chat parameter checks)."""

from __future__ import annotations

from portway_jina.testing import JinaAPI

from portway.testing import conformance

KEY = "jina_conformance_key_0123456789"

JINA = conformance.Conformance(
    provider="jina",
    config=lambda url: {"type": "jina", "base_url": url + "/v1", "api_key": KEY},
    fake=lambda steps: JinaAPI(steps, api_key=KEY),
    model="jina-embeddings-v3",
    features=frozenset({"embeddings", "rerank"}),
    rerank_model="jina-reranker-v2-base-multilingual",
)


test_conformance = conformance.conformance_tests(JINA)

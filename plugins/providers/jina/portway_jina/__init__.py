"""Jina AI provider: embeddings (``/v1/embeddings``) and rerank
(``/v1/rerank``).  Jina's API has no chat models: a chat request to it is a
400 naming the provider.

The translation is in :mod:`portway_jina.wire`; the HTTP side, shared with
the Voyage AI adapter, is :class:`portway.formats.embed_rerank.EmbedRerankProvider`.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.formats.embed_rerank import EmbedRerankProvider
from portway_jina.wire import embed_request, rerank_request

PORTWAY_PLUGIN_KIND = "provider"


class JinaProvider(EmbedRerankProvider):
    type = "jina"
    api_name = "Jina AI"
    default_base_url = "https://api.jina.ai/v1"
    env_key = "JINA_API_KEY"
    default_models = ("jina-embeddings-v4", "jina-embeddings-v3", "jina-clip-v2", "jina-code-embeddings-1.5b",
                      "jina-code-embeddings-0.5b", "jina-reranker-m0",
                      "jina-reranker-v2-base-multilingual", "jina-colbert-v2")
    rerank_results_key = "results"

    def embed_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return embed_request(body, self.name)

    def asks_base64(self, payload: dict[str, Any]) -> bool:
        return payload["embedding_type"] == "base64"

    def rerank_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return rerank_request(body, self.name)


@hookimpl
def register_providers(register: Any) -> None:
    register(JinaProvider)

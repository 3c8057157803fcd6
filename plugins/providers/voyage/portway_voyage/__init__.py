"""Voyage AI provider: embeddings (``/v1/embeddings``) and rerank
(``/v1/rerank``).  Voyage has no chat models: a chat request to it is a 400
naming the provider.

The translation is in :mod:`portway_voyage.wire`; the HTTP side, shared with
the Jina AI adapter, in :mod:`portway_voyage.base`.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.config import ProviderConfig
from portway.formats.embed_rerank import EmbedRerankProvider
from portway_voyage.wire import embed_request, rerank_request

PORTWAY_PLUGIN_KIND = "provider"

#: Where voyageai-python sends a MongoDB Atlas model API key (one starting with ``al-``),
#: by ``voyageai.util.get_default_base_url``.
ATLAS_BASE_URL = "https://ai.mongodb.com/v1"


class VoyageProvider(EmbedRerankProvider):
    type = "voyage"
    api_name = "Voyage AI"
    default_base_url = "https://api.voyageai.com/v1"
    env_key = "VOYAGE_API_KEY"
    default_models = ("voyage-4-large", "voyage-4", "voyage-4-lite", "voyage-3.5", "voyage-3.5-lite",
                      "voyage-3-large", "voyage-code-3", "voyage-finance-2", "voyage-law-2", "rerank-2.5",
                      "rerank-2.5-lite")
    rerank_results_key = "data"

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if config.base_url is None and self.api_key and self.api_key.startswith("al-"):
            self.base_url = ATLAS_BASE_URL

    def embed_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return embed_request(body, self.name)

    def asks_base64(self, payload: dict[str, Any]) -> bool:
        return payload.get("encoding_format") == "base64"

    def rerank_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return rerank_request(body, self.name)


@hookimpl
def register_providers(register: Any) -> None:
    register(VoyageProvider)

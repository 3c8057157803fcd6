"""Voyage AI provider: embeddings (``/v1/embeddings``) and rerank
(``/v1/rerank``).  Voyage has no chat models: a chat request to it is a 400
naming the provider.

The translation is in :mod:`portway_voyage.wire`; this module speaks HTTP.
"""

from __future__ import annotations

from typing import Any

from portway import hookimpl
from portway.config import ProviderConfig
from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway.providers import Provider
from portway_voyage.errors import parse_detail_error
from portway_voyage.wire import embed_request, embeddings_answer, rerank_answer, rerank_request

PORTWAY_PLUGIN_KIND = "provider"

#: Where voyageai-python sends a MongoDB Atlas model API key (one starting with ``al-``),
#: by ``voyageai.util.get_default_base_url``.
ATLAS_BASE_URL = "https://ai.mongodb.com/v1"


class VoyageProvider(Provider):
    type = "voyage"
    default_base_url = "https://api.voyageai.com/v1"
    env_key = "VOYAGE_API_KEY"
    default_models = ("voyage-4-large", "voyage-4", "voyage-4-lite", "voyage-3.5", "voyage-3.5-lite",
                      "voyage-3-large", "voyage-code-3", "voyage-finance-2", "voyage-law-2", "rerank-2.5",
                      "rerank-2.5-lite")

    def __init__(self, name: str, config: ProviderConfig) -> None:
        super().__init__(name, config)
        if config.base_url is None and self.api_key and self.api_key.startswith("al-"):
            self.base_url = ATLAS_BASE_URL

    parse_error_body = staticmethod(parse_detail_error)

    def unsupported(self, what: str) -> PortwayError:
        """What it cannot do (chat, streamed or not, on any ingress) is a 400 that says why."""
        return PortwayError(f"provider {self.name!r} (type voyage) does not support {what}: Voyage AI serves "
                            "embeddings and rerank only", kind="bad_request", code="unsupported")

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        response = await self.http.request("POST", path, json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        return self.answer_json(response)

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = embed_request(body, self.name)
        data = await self._post("/embeddings", payload)
        count = 1 if isinstance(payload["input"], str) else len(payload["input"])
        try:
            return embeddings_answer(data, count=count, model=body["model"], base64="encoding_format" in payload)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = rerank_request(body, self.name)
        data = await self._post("/rerank", payload)
        try:
            return rerank_answer(data, len(payload["documents"]))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


@hookimpl
def register_providers(register: Any) -> None:
    register(VoyageProvider)

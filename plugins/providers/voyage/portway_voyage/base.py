"""What an embeddings-and-rerank API adapter does, whatever its wire:
:class:`EmbedRerankProvider`.  Voyage AI's adapter is one; Jina AI's is
another (``portway-jina`` depends on this package for it).  Neither has chat.
"""

from __future__ import annotations

from typing import Any, ClassVar

from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway.providers import Provider
from portway_voyage.errors import parse_detail_error
from portway_voyage.wire import embeddings_answer, rerank_answer


class EmbedRerankProvider(Provider):
    """A provider with ``POST <base_url>/embeddings`` and ``POST <base_url>/rerank``,
    FastAPI-style ``{"detail"}`` errors, and no chat.  A subclass says how a
    canonical request becomes its body (:meth:`embed_request`,
    :meth:`rerank_request`) and where its rerank results are."""

    #: The API's name, for the 400 that refuses chat.
    api_name: ClassVar[str] = ""
    embeddings_path: ClassVar[str] = "/embeddings"
    rerank_path: ClassVar[str] = "/rerank"
    #: The key of the rerank answer's list of ``{index, relevance_score}``.
    rerank_results_key: ClassVar[str] = "results"

    parse_error_body = staticmethod(parse_detail_error)

    def unsupported(self, what: str) -> PortwayError:
        """What it cannot do (chat, streamed or not, on any ingress) is a 400 that says why."""
        return PortwayError(f"provider {self.name!r} (type {self.type}) does not support {what}: {self.api_name} "
                            "serves embeddings and rerank only", kind="bad_request", code="unsupported")

    def embed_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's embeddings body for a canonical ``body``."""
        raise NotImplementedError

    def asks_base64(self, payload: dict[str, Any]) -> bool:
        """Whether the upstream was asked for base64 (float32) vectors."""
        raise NotImplementedError

    def rerank_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's rerank body for a canonical ``body`` (with ``documents`` as strings)."""
        raise NotImplementedError

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        response = await self.http.request("POST", path, json=payload)
        if response.status >= 300:
            raise self.error_from_response(response)
        return self.answer_json(response)

    async def embeddings(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = self.embed_request(body)
        data = await self._post(self.embeddings_path, payload)
        count = 1 if isinstance(payload["input"], str) else len(payload["input"])
        try:
            return embeddings_answer(data, count=count, model=body["model"], base64=self.asks_base64(payload))
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None

    async def rerank(self, body: dict[str, Any], ctx: Any) -> dict[str, Any]:
        payload = self.rerank_request(body)
        data = await self._post(self.rerank_path, payload)
        try:
            return rerank_answer(data, len(payload["documents"]), self.rerank_results_key)
        except MalformedAnswer as exc:
            raise self.malformed(str(exc)) from None


__all__ = ["EmbedRerankProvider"]

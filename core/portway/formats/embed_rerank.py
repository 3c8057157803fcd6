"""Providers that embed and rerank and have no chat: the shared part of
their adapters (Voyage AI's, Jina AI's), :class:`EmbedRerankProvider`, and
readers of the answers they share.

An answer is untrusted: what is read is type-checked, and a wrong shape is a
:class:`~portway.formats.MalformedAnswer` (the provider's ``malformed`` 502).
"""

from __future__ import annotations

from typing import Any, ClassVar

from portway.errors import PortwayError
from portway.formats import MalformedAnswer
from portway.formats.openai import check_embeddings
from portway.formats.rerank import check_rerank
from portway.providers import Provider


class EmbedRerankProvider(Provider):
    """A provider with ``POST <base_url>/embeddings`` and ``POST <base_url>/rerank``,
    and no chat (errors in any shape :meth:`Provider.parse_error_body` reads,
    FastAPI's ``{"detail"}`` among them).  A subclass says how a
    canonical request becomes its body (:meth:`embed_request`,
    :meth:`rerank_request`) and where its rerank results are."""

    #: The API's name, for the 400 that refuses chat.
    api_name: ClassVar[str] = ""
    embeddings_path: ClassVar[str] = "/embeddings"
    rerank_path: ClassVar[str] = "/rerank"
    #: The key of the rerank answer's list of ``{index, relevance_score}``.
    rerank_results_key: ClassVar[str] = "results"

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


def embeddings_answer(data: Any, *, count: int, model: str, base64: bool) -> dict[str, Any]:
    """An OpenAI-shaped embeddings answer whose usage has only
    ``total_tokens`` (``{object, data: [{embedding, index}], model, usage:
    {total_tokens}}``: Voyage's, Jina's) as the canonical ``list``, one
    vector per input in input order, checked: every index once, vectors as
    base64 strings when ``base64`` was asked, else as lists."""
    check_embeddings(data)
    vectors: dict[int, Any] = {}
    for i, item in enumerate(data["data"]):
        index = item.get("index", i)
        if not 0 <= index < count or index in vectors:
            raise MalformedAnswer(f"data[{i}].index {index} is not one of the {count} inputs, or repeats")
        vector = item["embedding"]
        if base64 != isinstance(vector, str):
            raise MalformedAnswer(f"data[{i}].embedding is not a {'base64 string' if base64 else 'list'}")
        vectors[index] = vector
    if len(vectors) != count:
        raise MalformedAnswer(f"{len(vectors)} vectors for {count} inputs")
    tokens = _total_tokens(data.get("usage"))
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in range(count)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def rerank_answer(data: Any, count: int, results_key: str) -> dict[str, Any]:
    """A rerank answer with its ``{index, relevance_score}`` list under
    ``results_key`` and ``usage.total_tokens`` (Voyage's under ``data``,
    Jina's under ``results``) in the canonical shape, checked."""
    if type(data) is not dict:
        raise MalformedAnswer("the rerank answer is not a JSON object")
    results = data.get(results_key)
    if type(results) is not list:
        raise MalformedAnswer(f"{results_key} is missing or not a list")
    answer = {"results": [{"index": item.get("index"), "relevance_score": item.get("relevance_score")}
                          if type(item) is dict else item for item in results],
              "usage": {"total_tokens": _total_tokens(data.get("usage"))}}
    return check_rerank(answer, count)


def _total_tokens(usage: Any) -> int:
    tokens = usage.get("total_tokens") if type(usage) is dict else None
    if type(tokens) is not int or tokens < 0:
        raise MalformedAnswer("usage.total_tokens is missing or not a token count")
    return tokens


__all__ = ["EmbedRerankProvider", "embeddings_answer", "rerank_answer"]

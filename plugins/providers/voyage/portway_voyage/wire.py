"""Canonical requests as Voyage AI bodies, and Voyage's answers as canonical
ones: ``POST /v1/embeddings`` and ``POST /v1/rerank``.

Shapes from Voyage's API reference (https://docs.voyageai.com/reference/embeddings-api,
https://docs.voyageai.com/reference/reranker-api) and voyageai-python
(``voyageai/client.py``, ``api_resources/embedding.py``, ``object/reranking.py``).
An answer is untrusted: what is read is type-checked, and a wrong shape is a
:class:`MalformedAnswer`.
"""

from __future__ import annotations

from typing import Any

from portway.formats import MalformedAnswer
from portway.formats.openai import check_embeddings
from portway.formats.rerank import check_rerank, document_texts
from portway.quirks import refused

#: Voyage's own embeddings keys a request (or an alias's ``params``) may add; sent as given.
EMBED_EXTRAS = ("truncation", "output_dimension", "output_dtype")
#: Voyage's own rerank keys a request may add; sent as given.
RERANK_EXTRAS = ("truncation",)
#: ``input_type`` values: Voyage's own, and Cohere's names for the same two (an alias can then
#: move between the providers without changing its ``params``).
INPUT_TYPES = {"query": "query", "document": "document", "search_query": "query", "search_document": "document"}


def embed_request(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The ``/v1/embeddings`` body for a canonical embeddings ``body``."""
    inputs = body["input"]
    if not isinstance(inputs, str) and not all(isinstance(item, str) for item in inputs):
        raise refused(provider, "input", "Voyage embeds text; token ids have no Voyage form")
    payload: dict[str, Any] = {"input": inputs, "model": body["model"]}
    for key in EMBED_EXTRAS:
        if body.get(key) is not None:
            payload[key] = body[key]
    input_type = body.get("input_type")
    if input_type is not None:
        if input_type not in INPUT_TYPES:
            raise refused(provider, "input_type", f"{input_type!r} is not one of query, document "
                                                  "(or search_query, search_document)")
        payload["input_type"] = INPUT_TYPES[input_type]
    if body.get("dimensions") is not None:
        payload["output_dimension"] = body["dimensions"]
    # Voyage's base64 is the raw vector: float32 as OpenAI's, but int bytes for the other dtypes,
    # which an OpenAI client would decode as floats.  Those come back as lists of integers.
    if body.get("encoding_format") == "base64" and payload.get("output_dtype", "float") == "float":
        payload["encoding_format"] = "base64"
    return payload


def embeddings_answer(data: Any, *, count: int, model: str, base64: bool) -> dict[str, Any]:
    """Voyage's embeddings answer (``{object, data, model, usage: {total_tokens}}``)
    as the canonical ``list``, one vector per input in input order."""
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


def rerank_request(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The ``/v1/rerank`` body for a canonical rerank ``body``."""
    if body.get("max_tokens_per_doc") is not None:
        raise refused(provider, "max_tokens_per_doc", "Voyage has no per-document token limit (it truncates "
                                                      "to the model's context; see truncation)")
    payload: dict[str, Any] = {"query": body["query"], "documents": document_texts(body), "model": body["model"],
                               # The gateway fills documents in from the request: none need come back.
                               "return_documents": False}
    if body.get("top_n") is not None:
        payload["top_k"] = body["top_n"]
    for key in RERANK_EXTRAS:
        if body.get(key) is not None:
            payload[key] = body[key]
    return payload


def rerank_answer(data: Any, count: int, results_key: str) -> dict[str, Any]:
    """Voyage's rerank answer (``{object, data: [{index, relevance_score}], model,
    usage: {total_tokens}}``, ``results_key="data"``) in the canonical shape.
    Jina's is the same under ``results``."""
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


__all__ = ["EMBED_EXTRAS", "INPUT_TYPES", "RERANK_EXTRAS", "embed_request", "embeddings_answer", "rerank_answer",
           "rerank_request"]

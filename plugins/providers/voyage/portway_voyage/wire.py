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

from portway.formats.rerank import document_texts
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


__all__ = ["EMBED_EXTRAS", "INPUT_TYPES", "RERANK_EXTRAS", "embed_request", "rerank_request"]

"""Canonical requests as Jina AI bodies, and Jina's answers as canonical
ones: ``POST /v1/embeddings`` and ``POST /v1/rerank``.  Jina answers in
Voyage's shapes (OpenAI's embeddings list; rerank results under ``results``),
read by :mod:`portway.formats.embed_rerank`.

Shapes from Jina's API reference (https://api.jina.ai/openapi.json, and the
request schemas Jina publishes for its models in jina-ai/meta-prompt
``v9.txt``).
"""

from __future__ import annotations

from typing import Any

from portway.formats.rerank import document_texts
from portway.quirks import refused

#: Jina's own embeddings keys a request (or an alias's ``params``) may add; sent as given.
EMBED_EXTRAS = ("task", "late_chunking", "truncate", "normalized", "return_multivector")
#: ``input_type`` (Voyage's and Cohere's word for it) as Jina's retrieval ``task``.
INPUT_TYPES = {"query": "retrieval.query", "search_query": "retrieval.query",
               "document": "retrieval.passage", "search_document": "retrieval.passage"}
#: The ``embedding_type`` values whose vectors are lists (``base64`` is OpenAI's float32 base64).
LIST_TYPES = ("float", "binary", "ubinary")


def embed_request(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The ``/v1/embeddings`` body for a canonical embeddings ``body``."""
    inputs = body["input"]
    if isinstance(inputs, str):
        inputs = [inputs]  # Jina's input is always an array
    elif not all(isinstance(item, str) for item in inputs):
        raise refused(provider, "input", "Jina embeds text; token ids have no Jina form")
    payload: dict[str, Any] = {"model": body["model"], "input": inputs}
    for key in EMBED_EXTRAS:
        if body.get(key) is not None:
            payload[key] = body[key]
    input_type = body.get("input_type")
    if input_type is not None and "task" not in payload:
        if input_type not in INPUT_TYPES:
            raise refused(provider, "input_type", f"{input_type!r} is not one of query, document "
                                                  "(or search_query, search_document); Jina's own is task")
        payload["task"] = INPUT_TYPES[input_type]
    if body.get("dimensions") is not None:
        payload["dimensions"] = body["dimensions"]
    kind = body.get("embedding_type")
    if kind is not None and kind not in (*LIST_TYPES, "base64"):
        raise refused(provider, "embedding_type", "one of float, base64, binary, ubinary (a list of types "
                                                  "answers in a shape OpenAI's has no place for)")
    if kind in ("binary", "ubinary"):
        payload["embedding_type"] = kind  # integer vectors: lists, whatever the encoding_format
    elif body.get("encoding_format") == "base64" or kind == "base64":
        payload["embedding_type"] = "base64"
    else:
        payload["embedding_type"] = "float"
    return payload


def rerank_request(body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The ``/v1/rerank`` body for a canonical rerank ``body``."""
    if body.get("max_tokens_per_doc") is not None:
        raise refused(provider, "max_tokens_per_doc", "Jina has no per-document token limit (its rerankers "
                                                      "truncate to their own context)")
    payload: dict[str, Any] = {"model": body["model"], "query": body["query"], "documents": document_texts(body),
                               # The gateway fills documents in from the request: none need come back.
                               "return_documents": False}
    if body.get("top_n") is not None:
        payload["top_n"] = body["top_n"]
    return payload


__all__ = ["EMBED_EXTRAS", "INPUT_TYPES", "LIST_TYPES", "embed_request", "rerank_request"]

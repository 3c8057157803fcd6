"""Rerank answers: the canonical shape, the check of an adapter's answer,
and what the gateway does to every answer before the client gets it.

The canonical answer, in Cohere's and Jina's shape::

    {"id": "rerank-…", "model": "…",
     "results": [{"index": 2, "relevance_score": 0.91, "document": {"text": "…"}}, …],
     "usage": {"total_tokens": 42}}          # or {"search_units": 1}, as the provider counts

``results`` are sorted by ``relevance_score``, highest first, at most
``top_n`` of them, each ``index`` the position of a document in the
request; ``document`` is there when the request said ``return_documents``
(the gateway fills it from the request: an upstream's copy is not trusted).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from portway.formats import MalformedAnswer


def document_texts(body: dict[str, Any]) -> list[str]:
    """The text of each document of a rerank request, in order."""
    return [doc if isinstance(doc, str) else str(doc.get("text", "")) for doc in body.get("documents") or ()]


def check_rerank(data: Any, count: int) -> dict[str, Any]:
    """``data`` if it is a canonical rerank answer for ``count`` documents:
    results with distinct indexes in range and finite numeric scores."""
    if type(data) is not dict:
        raise MalformedAnswer("the rerank answer is not a JSON object")
    results = data.get("results")
    if type(results) is not list:
        raise MalformedAnswer("results is missing or not a list")
    seen: set[int] = set()
    for i, result in enumerate(results):
        if type(result) is not dict:
            raise MalformedAnswer(f"results[{i}] is not an object")
        index, score = result.get("index"), result.get("relevance_score")
        if type(index) is not int or not 0 <= index < count:
            raise MalformedAnswer(f"results[{i}].index is not the position of one of the {count} documents")
        if index in seen:
            raise MalformedAnswer(f"results[{i}].index {index} appears twice")
        seen.add(index)
        if type(score) not in (int, float) or not math.isfinite(score):
            raise MalformedAnswer(f"results[{i}].relevance_score is not a number")
    usage = data.get("usage")
    if usage is not None and type(usage) is not dict:
        raise MalformedAnswer("usage is not an object")
    return data


def finish_rerank(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The answer the client gets: sorted, cut to ``top_n``, documents
    filled in when asked for, an id and the model the client named."""
    results = sorted(answer["results"], key=lambda r: (-r["relevance_score"], r["index"]))
    top_n = body.get("top_n")
    if top_n is not None:
        results = results[:top_n]
    texts = document_texts(body) if body.get("return_documents") else None
    out_results = []
    for result in results:
        item: dict[str, Any] = {"index": result["index"], "relevance_score": result["relevance_score"]}
        if texts is not None:
            item["document"] = {"text": texts[result["index"]]}
        out_results.append(item)
    out: dict[str, Any] = {"id": answer.get("id") if isinstance(answer.get("id"), str) else f"rerank-{uuid.uuid4().hex}",
                           "model": body.get("model"), "results": out_results}
    if isinstance(answer.get("usage"), dict):
        out["usage"] = answer["usage"]
    return out


__all__ = ["check_rerank", "document_texts", "finish_rerank"]

"""A fake Jina AI API on a :class:`~portway.testing.FakeUpstream`, for tests
and the conformance kit.

Its rules are Jina's, from its API reference (https://api.jina.ai/openapi.json
and the per-model request schemas in jina-ai/meta-prompt ``v9.txt``), not
from the adapter:

- ``Authorization: Bearer <key>``; a missing or wrong key is a 401.
- Errors are ``{"detail": "<message>"}``, as api.jina.ai answers them
  (e.g. ``{"detail": "[RID: …] Failed to encode text"}``).
- ``POST /v1/embeddings``: ``model`` and ``input`` are required, and
  ``input`` is an array (of strings, or ``{"text"}`` objects), never a bare
  string; ``embedding_type`` is ``float``, ``base64``, ``binary`` or
  ``ubinary``; ``task`` one of the documented adapters (``retrieval.query``,
  ``retrieval.passage``, ``text-matching``, ``classification``,
  ``separation``, ``code.query``, ``code.passage`` and the code models'
  ``nl2code.*``, ``code2code.*``, ``code2nl.*``, ``code2completion.*``,
  ``qa.*``); ``dimensions`` a positive integer; ``late_chunking``,
  ``truncate``, ``normalized``, ``return_multivector`` booleans.  It answers
  ``{model, object: "list", usage: {total_tokens, prompt_tokens}, data:
  [{object, index, embedding}]}``, base64 being little-endian float32.
- ``POST /v1/rerank``: ``model``, ``query`` (non-empty) and ``documents``
  (a non-empty array of strings or ``{"text"}`` objects) are required;
  ``top_n`` is at least 1; ``return_documents`` a boolean.  It answers
  ``{model, usage: {total_tokens}, results: [{index, relevance_score,
  document?: {text}}]}``, sorted by score and cut to ``top_n``.
- A top-level field the endpoint does not have is refused (stricter than
  documented, so an OpenAI key that leaks through, ``encoding_format``, is
  caught).

Vectors and scores are the core's (:mod:`portway.testing.embed_rerank`),
stable so tests know what to expect.
"""

from __future__ import annotations

from typing import Any

from portway.testing.embed_rerank import (
    DEFAULT_DIMENSION,
    DetailErrorAPI,
    encoded,
    field_problem,
    quantized,
    rerank_tokens,
    tokens_of,
    vector,
)
from portway.testing.upstream import RecordedRequest, Reply, json_reply

EMBED_FIELDS = frozenset({"model", "input", "embedding_type", "task", "dimensions", "late_chunking", "truncate",
                          "normalized", "return_multivector"})
RERANK_FIELDS = frozenset({"model", "query", "documents", "top_n", "return_documents"})
EMBEDDING_TYPES = ("float", "base64", "binary", "ubinary")
TASKS = frozenset({"retrieval.query", "retrieval.passage", "text-matching", "classification", "separation",
                   "code.query", "code.passage"} | {f"{kind}.{side}" for kind in ("nl2code", "code2code", "code2nl",
                                                                              "code2completion", "qa")
                                                    for side in ("query", "passage")})
BOOLEANS = ("late_chunking", "truncate", "normalized", "return_multivector", "return_documents")


def _text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return item["text"]
    return None


class JinaAPI(DetailErrorAPI):
    """The fake Jina API; see the module docstring."""

    NO_KEY = "Authentication required."
    BAD_KEY = "Invalid API key."
    INVALID_STATUS = 422  # FastAPI's validation status

    def _embeddings(self, request: RecordedRequest) -> Reply:
        body = self.accept(request, EMBED_FIELDS, check_embed)
        if isinstance(body, Reply):
            return body
        self.embedding_requests.append(body)
        texts = [_text(item) or "" for item in body["input"]]
        kind = body.get("embedding_type") or "float"
        data = []
        for index, text in enumerate(texts):
            values: list[Any] = vector(text, body.get("dimensions") or DEFAULT_DIMENSION)
            embedding: Any = values
            if kind == "base64":
                embedding = encoded(values)
            elif kind != "float":
                embedding = quantized(values, kind)
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(tokens_of(t) for t in texts)
        return json_reply({"model": body["model"], "object": "list", "data": data,
                           "usage": {"total_tokens": tokens, "prompt_tokens": tokens}})

    def _rerank(self, request: RecordedRequest) -> Reply:
        body = self.accept(request, RERANK_FIELDS, check_rerank)
        if isinstance(body, Reply):
            return body
        documents = [_text(item) or "" for item in body["documents"]]
        ranked = self.rank(request, body["model"], body["query"], documents, body.get("top_n"))
        results = [{"index": i, "relevance_score": score, **({"document": {"text": documents[i]}}
                                                              if body.get("return_documents") else {})}
                   for i, score in ranked]
        return json_reply({"model": body["model"], "usage": {"total_tokens": rerank_tokens(body["query"], documents)},
                           "results": results})


def check_embed(body: dict[str, Any]) -> str | None:
    """Jina's refusal of an embeddings ``body``, or None."""
    problem = field_problem(body, booleans=BOOLEANS)
    if problem:
        return problem
    inputs = body.get("input")
    if not isinstance(inputs, list) or not inputs or any(_text(item) is None for item in inputs):
        return "input: Input should be a valid array of strings or text objects."
    if "embedding_type" in body and body["embedding_type"] not in EMBEDDING_TYPES:
        return f"embedding_type: Input should be one of {', '.join(EMBEDDING_TYPES)}."
    if "task" in body and body["task"] not in TASKS:
        return f"task: {body['task']!r} is not a supported task."
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)
                                   or dimensions < 1):
        return "dimensions: Input should be a positive integer."
    return None


def check_rerank(body: dict[str, Any]) -> str | None:
    """Jina's refusal of a rerank ``body``, or None."""
    problem = field_problem(body, texts=("model", "query"), booleans=BOOLEANS)
    if problem:
        return problem
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or any(_text(item) is None for item in documents):
        return "documents: Input should be a non-empty array of strings or text objects."
    top_n = body.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        return "top_n: Input should be greater than or equal to 1."
    return None


__all__ = ["JinaAPI", "check_embed", "check_rerank"]

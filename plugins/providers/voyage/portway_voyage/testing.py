"""A fake Voyage AI API on a :class:`~portway.testing.FakeUpstream`, for
tests and the conformance kit.

Its rules are Voyage's, from its API reference
(https://docs.voyageai.com/reference/embeddings-api,
https://docs.voyageai.com/reference/reranker-api) and voyageai-python, not
from the adapter:

- ``Authorization: Bearer <key>`` (``voyageai.util.api_key_to_header``);
  a missing or wrong key is a 401.
- Errors are ``{"detail": "<message>"}`` (``api_requestor.handle_error_response``).
- ``POST /v1/embeddings``: ``input`` (a string or 1 to 1,000 non-empty
  strings) and ``model`` are required; ``input_type`` is ``query``,
  ``document`` or null; ``output_dtype`` one of ``float``, ``int8``,
  ``uint8``, ``binary``, ``ubinary``; ``output_dimension`` one of 256, 512,
  1024, 2048 (the dimensions of the Matryoshka models); ``encoding_format``
  null or ``base64`` (OpenAI's ``float`` is not a Voyage value);
  ``truncation`` a boolean.  It answers ``{object: "list", data: [{object,
  embedding, index}], model, usage: {total_tokens}}``, the vectors as lists,
  or with ``encoding_format: base64`` as base64 of the raw little-endian
  values (float32, or one byte each for the integer dtypes).
- ``POST /v1/rerank``: ``query`` (non-empty), ``documents`` (1 to 1,000
  strings) and ``model`` are required; ``top_k`` is null or at least 1;
  ``return_documents`` and ``truncation`` booleans.  It answers ``{object:
  "list", data: [{index, relevance_score, document?}], model, usage:
  {total_tokens}}``, sorted by score and cut to ``top_k``.
- A top-level field the endpoint does not have is refused (stricter than
  documented, so an OpenAI or Cohere key that leaks through is caught).

Scores come from :func:`portway.testing.script.relevance`, vectors from
:func:`portway.testing.openai_chat.vector_of`: both stable, so tests know what
to expect.  Every accepted rerank request is kept in ``rerank_calls``, every
accepted embeddings body in ``embedding_requests``, every refusal in
``refusals``.
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

EMBED_FIELDS = frozenset({"input", "model", "input_type", "truncation", "output_dimension", "output_dtype",
                          "encoding_format"})
RERANK_FIELDS = frozenset({"query", "documents", "model", "top_k", "return_documents", "truncation"})
INPUT_TYPES = (None, "query", "document")
OUTPUT_DTYPES = ("float", "int8", "uint8", "binary", "ubinary")
OUTPUT_DIMENSIONS = (256, 512, 1024, 2048)
MAX_INPUTS = 1000
MAX_DOCUMENTS = 1000
class VoyageAPI(DetailErrorAPI):
    """The fake Voyage API; see the module docstring."""

    def _embeddings(self, request: RecordedRequest) -> Reply:
        body = self.accept(request, EMBED_FIELDS, check_embed)
        if isinstance(body, Reply):
            return body
        self.embedding_requests.append(body)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        dtype = body.get("output_dtype") or "float"
        data = []
        for index, text in enumerate(texts):
            values: list[Any] = vector(text, body.get("output_dimension") or DEFAULT_DIMENSION)
            if dtype != "float":
                values = quantized(values, dtype)
            embedding: Any = values
            if body.get("encoding_format") == "base64":
                embedding = encoded(values, "f" if dtype == "float" else "b" if dtype in ("int8", "binary") else "B")
            data.append({"object": "embedding", "embedding": embedding, "index": index})
        return json_reply({"object": "list", "data": data, "model": body["model"],
                           "usage": {"total_tokens": sum(tokens_of(t) for t in texts)}})

    def _rerank(self, request: RecordedRequest) -> Reply:
        body = self.accept(request, RERANK_FIELDS, check_rerank)
        if isinstance(body, Reply):
            return body
        documents = body["documents"]
        ranked = self.rank(request, body["model"], body["query"], documents, body.get("top_k"))
        data = [{"index": i, "relevance_score": score, **({"document": documents[i]}
                                                            if body.get("return_documents") else {})}
                for i, score in ranked]
        return json_reply({"object": "list", "data": data, "model": body["model"],
                           "usage": {"total_tokens": rerank_tokens(body["query"], documents)}})


def check_embed(body: dict[str, Any]) -> str | None:
    """Voyage's refusal of an embeddings ``body``, or None."""
    problem = field_problem(body, booleans=("truncation",))
    if problem:
        return problem
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return "input: Input should be a non-empty string or a list of non-empty strings."
    if len(texts) > MAX_INPUTS:
        return f"input: The list can have at most {MAX_INPUTS} items, got {len(texts)}."
    if body.get("input_type") not in INPUT_TYPES:
        return f"input_type: Input should be 'query' or 'document', got {body['input_type']!r}."
    if "output_dtype" in body and body["output_dtype"] not in OUTPUT_DTYPES:
        return f"output_dtype: Input should be one of {', '.join(OUTPUT_DTYPES)}."
    if body.get("output_dimension") is not None and body["output_dimension"] not in OUTPUT_DIMENSIONS:
        return f"output_dimension: {body['output_dimension']!r} is not supported; use one of 256, 512, 1024, 2048."
    if body.get("encoding_format") not in (None, "base64"):
        return f"encoding_format: Input should be 'base64' or null, got {body['encoding_format']!r}."
    return None


def check_rerank(body: dict[str, Any]) -> str | None:
    """Voyage's refusal of a rerank ``body``, or None."""
    problem = field_problem(body, texts=("model", "query"), booleans=("return_documents", "truncation"))
    if problem:
        return problem
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        return "documents: Input should be a non-empty list of strings."
    if len(documents) > MAX_DOCUMENTS:
        return f"documents: The number of documents cannot exceed {MAX_DOCUMENTS}."
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        return "top_k: Input should be greater than or equal to 1."
    return None


__all__ = ["VoyageAPI", "check_embed", "check_rerank"]

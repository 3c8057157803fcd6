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

import base64
import math
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any, Self

from portway.testing.openai_chat import vector_of
from portway.testing.script import Call, RerankCall, Script, Step, relevance
from portway.testing.upstream import FakeUpstream, RecordedRequest, Reply, json_reply

EMBED_FIELDS = frozenset({"input", "model", "input_type", "truncation", "output_dimension", "output_dtype",
                          "encoding_format"})
RERANK_FIELDS = frozenset({"query", "documents", "model", "top_k", "return_documents", "truncation"})
INPUT_TYPES = (None, "query", "document")
OUTPUT_DTYPES = ("float", "int8", "uint8", "binary", "ubinary")
OUTPUT_DIMENSIONS = (256, 512, 1024, 2048)
MAX_INPUTS = 1000
MAX_DOCUMENTS = 1000
#: The size of a vector when no output_dimension is asked for (small, for tests).
DEFAULT_DIMENSION = 8


def vector(text: str, dimension: int = DEFAULT_DIMENSION) -> list[float]:
    """The fake's vector of ``text``: :func:`vector_of` for the default size, extended for larger ones."""
    pieces = [vector_of(text if k == 0 else f"{text}\x00{k}") for k in range(math.ceil(dimension / 8))]
    return [value for piece in pieces for value in piece][:dimension]


def quantized(values: list[float], dtype: str) -> list[int]:
    """``values`` in an integer ``dtype`` (bits packed 8 to a number for the binary ones)."""
    if dtype in ("int8", "uint8"):
        return [round(v * 127) + (128 if dtype == "uint8" else 0) for v in values]
    packed = [sum(1 << (7 - j) for j, v in enumerate(values[i:i + 8]) if v > 0) for i in range(0, len(values), 8)]
    return [b - 128 for b in packed] if dtype == "binary" else packed


def tokens_of(text: str) -> int:
    return max(len(text.split()), 1)


def rerank_tokens(query: str, documents: list[str]) -> int:
    """Tokens a reranker counts: the query once per document, and the documents."""
    return tokens_of(query) * len(documents) + sum(tokens_of(d) for d in documents)


def encoded(values: list[Any], packing: str = "f") -> str:
    """``values`` as base64 of their little-endian ``struct`` ``packing`` (float32 by default)."""
    return base64.b64encode(struct.pack(f"<{len(values)}{packing}", *values)).decode()


class DetailErrorAPI:
    """What the fakes of Voyage's and Jina's APIs share: bearer auth, JSON
    bodies with a fixed set of fields, FastAPI's ``{"detail": "<message>"}``
    errors, and a reranker scored by :func:`relevance`.  ``api_key``: the
    only key accepted (any non-empty bearer key when None)."""

    #: The words and status of a refusal, overridden per API.
    NO_KEY = "No API key provided."
    BAD_KEY = "Provided API key is invalid."
    INVALID_STATUS = 400

    def __init__(self, script: Sequence[Step] = (), *, api_key: str | None = None) -> None:
        self.script = Script(script)  # no chat: nothing is ever played from it
        self.api_key = api_key
        self.calls: list[Call] = []
        self.rerank_calls: list[RerankCall] = []
        self.embedding_requests: list[dict[str, Any]] = []
        #: (request, status, message) of every refused request.
        self.refusals: list[tuple[RecordedRequest, int, str]] = []
        self.disconnected = threading.Event()
        self.stream_delay = 0.0

    def seen(self, call: Call) -> Any:
        raise AssertionError("this API has no chat: there is no model call to decode")

    def error(self, status: int, message: str, retry_after: str | None = None) -> Reply:
        """An error in the API's shape (a test may ``answer_all`` it)."""
        return json_reply({"detail": message}, status, {"retry-after": retry_after} if retry_after else None)

    def body(self, request: RecordedRequest, fields: frozenset[str]) -> dict[str, Any] | Reply:
        """The request's JSON body, or the refusal of a request without the
        right key, without a JSON object, or with a field not in ``fields``."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self.refuse(request, 401, self.NO_KEY)
        if self.api_key is not None and key.strip() != self.api_key:
            return self.refuse(request, 401, self.BAD_KEY)
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.refuse(request, 400, "Request body is not a JSON object.")
        unknown = sorted(set(body) - fields)
        if unknown:
            return self.refuse(request, 400, f"Unexpected argument: {unknown[0]}.")
        return body

    def accept(self, request: RecordedRequest, fields: frozenset[str],
               check: Callable[[dict[str, Any]], str | None]) -> dict[str, Any] | Reply:
        """The request's body if :meth:`body` takes it and ``check`` finds
        nothing wrong with it, else the refusal (``INVALID_STATUS`` for what
        ``check`` finds)."""
        body = self.body(request, fields)
        if isinstance(body, Reply):
            return body
        problem = check(body)
        return self.refuse(request, self.INVALID_STATUS, problem) if problem else body

    def refuse(self, request: RecordedRequest, status: int, message: str) -> Reply:
        self.refusals.append((request, status, message))
        return self.error(status, message)

    def install(self, upstream: FakeUpstream) -> Self:
        """Serve ``POST /v1/embeddings`` and ``POST /v1/rerank`` on ``upstream``."""
        upstream.add("/v1/embeddings", self._embeddings)
        upstream.add("/v1/rerank", self._rerank)
        self.disconnected = upstream.disconnected
        return self

    def _embeddings(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def _rerank(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def rank(self, request: RecordedRequest, model: str, query: str, documents: list[str],
             top: int | None) -> list[tuple[int, float]]:
        """(index, score) of the ``top`` best documents, best first; the call is recorded."""
        scores = [relevance(query, document) for document in documents]
        self.rerank_calls.append(RerankCall(model, query, documents, top, scores, request))
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[:top or len(documents)]
        return [(i, scores[i]) for i in order]


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


def conformance_tests_without_chat(conformance: Any) -> Any:
    """:func:`portway.testing.conformance.conformance_tests` for a provider
    that does not claim ``chat``, without the ``param_*`` checks.

    The kit skips the chat checks of such a provider, but not its parameter
    checks (``max_tokens``, ``stop``, ... are chat parameters, checked
    through a chat request): until the kit skips them too, they are left
    out here.  Every other check runs as ``conformance_tests`` runs it."""
    import pytest

    from portway.testing.conformance import CHECKS, run_check

    if "chat" in conformance.features:
        raise ValueError("conformance_tests_without_chat is for providers that do not claim chat")
    names = [name for name, check in CHECKS.items()
             if check.skip_reason(conformance) is None and not name.startswith("param_")]

    @pytest.mark.parametrize("check", names)
    def test_conformance(check: str, portway_conformance_servers: None) -> None:
        __tracebackhide__ = True
        run_check(conformance, check)

    test_conformance.__doc__ = f"The {conformance.provider} provider passes the conformance check."
    return test_conformance


def field_problem(body: dict[str, Any], *, texts: Sequence[str] = ("model",),
                  booleans: Sequence[str] = ()) -> str | None:
    """The refusal of a ``body`` whose ``texts`` are not all non-empty
    strings, or whose ``booleans`` (where given) are not all booleans."""
    for key in texts:
        if not isinstance(body.get(key), str) or not body[key]:
            return f"{key}: Field required (a non-empty string)."
    for key in booleans:
        if key in body and not isinstance(body[key], bool):
            return f"{key}: Input should be a valid boolean."
    return None


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


__all__ = ["DetailErrorAPI", "VoyageAPI", "check_embed", "check_rerank", "conformance_tests_without_chat", "encoded",
           "field_problem",
           "quantized", "rerank_tokens", "tokens_of", "vector"]

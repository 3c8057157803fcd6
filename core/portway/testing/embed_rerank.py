"""What fakes of embeddings-and-rerank APIs share (Voyage AI's and Jina AI's
in their packages): bearer auth, JSON bodies with a fixed set of fields,
FastAPI's ``{"detail": "<message>"}`` errors, a reranker scored by
:func:`~portway.testing.script.relevance`, stable vectors, and the encodings
of vectors (float32 or integer bytes, base64).  A subclass states its API's
rules (its fields, what it refuses) and renders its answers.
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


__all__ = ["DEFAULT_DIMENSION", "DetailErrorAPI", "encoded", "field_problem", "quantized", "rerank_tokens",
           "tokens_of", "vector"]

"""The jina adapter against a fake Jina AI API on a real socket
(:mod:`portway_jina.testing`): the bodies it sends, how it reads answers and
errors, and the whole path through a gateway with httpx and the openai SDK
as clients."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import portway_jina
import pytest
from portway_jina import JinaProvider
from portway_jina.testing import JinaAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.embed_rerank import quantized, vector
from portway.testing.gateway import GatewayServer
from portway.testing.script import relevance

T = TypeVar("T")
KEY = "jina_test_key_0123456789abcdef"
QUERY = "capital of France"
DOCUMENTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Bananas are yellow."]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def run(upstream: FakeUpstream, action: Callable[[JinaProvider], Awaitable[T]]) -> T:
    settings = ProviderConfig.model_validate({"type": "jina", "api_key": KEY, "base_url": upstream.url + "/v1"})
    return run_provider(JinaProvider("ji", settings), action)


def fake(upstream: FakeUpstream) -> JinaAPI:
    return JinaAPI(api_key=KEY).install(upstream)


def embed(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.embeddings({"model": "jina-embeddings-v3", **body}, None))


def rerank(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.rerank({"model": "jina-reranker-v2-base-multilingual", "query": QUERY,
                                             "documents": DOCUMENTS, **body}, None))


def failure(upstream: FakeUpstream, action: Callable[[JinaProvider], Awaitable[Any]]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action)
    assert KEY not in caught.value.message
    return caught.value


# -- configuration --------------------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_API_KEY", "jina_env_key_0123456789")
    provider = JinaProvider("ji", ProviderConfig(type="jina"))
    assert provider.base_url == "https://api.jina.ai/v1"
    assert provider.auth_headers() == {"authorization": "Bearer jina_env_key_0123456789"}
    assert {"jina-embeddings-v3", "jina-reranker-v2-base-multilingual"} <= set(provider.models())


def test_registration() -> None:
    registered: list[type] = []
    portway_jina.register_providers(registered.append)
    assert registered == [JinaProvider] and portway_jina.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "jina"]
    assert [e.value for e in entry] == ["portway_jina"]


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_request_and_answer(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = embed(upstream, input="a b", dimensions=32, encoding_format="float", user="u-1",
                   task="text-matching", late_chunking=False, truncate=True, normalized=True, other_key=1)
    assert upstream.last.path == "/v1/embeddings" and not api.refusals
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    # A string becomes a one-item array; encoding_format becomes embedding_type; user and unknown keys dropped.
    assert upstream.last.json() == {"model": "jina-embeddings-v3", "input": ["a b"], "task": "text-matching",
                                    "late_chunking": False, "truncate": True, "normalized": True, "dimensions": 32,
                                    "embedding_type": "float"}
    assert result == {"object": "list", "model": "jina-embeddings-v3",
                      "usage": {"prompt_tokens": 2, "total_tokens": 2},
                      "data": [{"object": "embedding", "index": 0, "embedding": vector("a b", 32)}]}


def test_base64_is_asked_of_jina_as_embedding_type(upstream: FakeUpstream) -> None:
    fake(upstream)
    result = embed(upstream, input=["a", "b"], encoding_format="base64")
    assert upstream.last.json()["embedding_type"] == "base64" and "encoding_format" not in upstream.last.json()
    decoded = [struct.unpack("<8f", base64.b64decode(item["embedding"])) for item in result["data"]]
    assert decoded[1] == pytest.approx(vector("b"), abs=1e-6)


def test_binary_vectors_come_back_as_lists_even_when_base64_is_asked(upstream: FakeUpstream) -> None:
    fake(upstream)
    result = embed(upstream, input="a", encoding_format="base64", embedding_type="ubinary")
    assert upstream.last.json()["embedding_type"] == "ubinary"
    assert result["data"][0]["embedding"] == quantized(vector("a"), "ubinary")


@pytest.mark.parametrize(("body", "task"), [({"input_type": "query"}, "retrieval.query"),
                                            ({"input_type": "search_document"}, "retrieval.passage"),
                                            ({"input_type": "query", "task": "separation"}, "separation")])
def test_input_type_becomes_a_retrieval_task(upstream: FakeUpstream, body: dict[str, Any], task: str) -> None:
    api = fake(upstream)
    embed(upstream, input="a", **body)
    assert upstream.last.json()["task"] == task and "input_type" not in upstream.last.json() and not api.refusals


@pytest.mark.parametrize(("extra", "param"), [({"input": [[1, 2, 3]]}, "input"),
                                              ({"input_type": "clustering"}, "input_type"),
                                              ({"embedding_type": ["float", "binary"]}, "embedding_type")])
def test_embedding_refusals_before_anything_is_sent(upstream: FakeUpstream, extra: dict[str, Any],
                                                    param: str) -> None:
    with pytest.raises(PortwayError) as caught:
        embed(upstream, **{"input": "x", **extra})
    assert (caught.value.kind, caught.value.param) == ("bad_request", param) and upstream.requests == []


def test_malformed_embeddings(upstream: FakeUpstream) -> None:
    upstream.add("/v1/embeddings", json_reply({"data": [{"embedding": [0.1], "index": 0}],
                                               "usage": {"total_tokens": 1}}))
    error = failure(upstream, lambda p: p.embeddings({"model": "jina-embeddings-v3", "input": ["a", "b"]}, None))
    assert (error.kind, error.status) == ("server_error", 502)


# -- rerank ----------------------------------------------------------------------------------------


def test_rerank_request_and_answer(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = rerank(upstream, top_n=2, return_documents=True, rank_fields=["text"],
                    documents=[{"text": d, "id": i} for i, d in enumerate(DOCUMENTS)])
    assert upstream.last.path == "/v1/rerank" and not api.refusals
    assert upstream.last.json() == {"model": "jina-reranker-v2-base-multilingual", "query": QUERY,
                                    "documents": DOCUMENTS, "return_documents": False, "top_n": 2}
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    assert result == {"results": [{"index": 1, "relevance_score": scores[1]},
                                  {"index": 0, "relevance_score": scores[0]}],
                      "usage": {"total_tokens": 3 * 3 + 6 + 6 + 3}}


def test_max_tokens_per_doc_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        rerank(upstream, max_tokens_per_doc=100)
    assert (caught.value.kind, caught.value.param) == ("bad_request", "max_tokens_per_doc")
    assert upstream.requests == []


@pytest.mark.parametrize("answer", [
    {"results": [{"index": 3, "relevance_score": 0.5}], "usage": {"total_tokens": 1}},
    {"results": [{"index": 0, "relevance_score": None}], "usage": {"total_tokens": 1}},
    {"data": [{"index": 0, "relevance_score": 0.5}], "usage": {"total_tokens": 1}},  # Voyage's shape, not Jina's
    {"results": [{"index": 0, "relevance_score": 0.5}], "usage": {}},
])
def test_malformed_rerank_answers(upstream: FakeUpstream, answer: Any) -> None:
    upstream.add("/v1/rerank", json_reply(answer))
    error = failure(upstream, lambda p: p.rerank({"model": "m", "query": QUERY, "documents": DOCUMENTS}, None))
    assert (error.kind, error.status) == ("server_error", 502)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "headers", "kind", "message"), [
    (400, {"detail": f"[RID: 06b5] Failed to encode text for {KEY}"}, {}, "bad_request",
     "[RID: 06b5] Failed to encode text for [redacted]"),
    (401, {"detail": "Invalid API key."}, {}, "authentication", "Invalid API key."),
    (402, {"detail": "Insufficient account balance"}, {}, "billing", "Insufficient account balance"),
    (422, {"detail": [{"loc": ["body", "top_n"], "msg": "Input should be greater than 0"}]}, {}, "bad_request",
     "top_n: Input should be greater than 0"),
    (422, {"error": {"message": "Invalid input or parameters"}}, {}, "bad_request", "Invalid input or parameters"),
    (429, {"detail": "Rate limit exceeded"}, {"retry-after": "3"}, "rate_limit", "Rate limit exceeded"),
    (500, {"detail": "Internal error"}, {}, "server_error", "Internal error"),
])
def test_errors(upstream: FakeUpstream, status: int, body: dict[str, Any], headers: dict[str, str], kind: str,
                message: str) -> None:
    upstream.json("/v1/rerank", body, status=status, headers=headers)
    error = failure(upstream, lambda p: p.rerank({"model": "m", "query": QUERY, "documents": DOCUMENTS}, None))
    assert (error.status, error.kind, error.retry_after) == (status, kind, headers.get("retry-after"))
    assert message in error.message and "detail" not in error.message


def test_wrong_key(upstream: FakeUpstream) -> None:
    JinaAPI(api_key="jina_another_key_0123456789").install(upstream)
    error = failure(upstream, lambda p: p.embeddings({"model": "jina-embeddings-v3", "input": "a"}, None))
    assert (error.status, error.kind) == (401, "authentication") and "Invalid API key." in error.message


# -- through a gateway ------------------------------------------------------------------------------


@pytest.fixture
def gateway(upstream: FakeUpstream) -> Iterator[GatewayServer]:
    config = {"providers": {"ji": {"type": "jina", "api_key": KEY, "base_url": upstream.url + "/v1"}},
              "models": {"search": {"target": {"provider": "ji", "model": "jina-reranker-v2-base-multilingual"}},
                         "query-embed": {"target": {"provider": "ji", "model": "jina-embeddings-v3",
                                                    "params": {"input_type": "query"}}}}}
    with GatewayServer(config) as server:
        yield server


def test_rerank_through_the_gateway_with_httpx(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    api = fake(upstream)
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    with httpx.Client(base_url=gateway.url, headers={"authorization": "Bearer portway-test"}, timeout=30) as client:
        first = client.post("/v1/rerank", json={"model": "search", "query": QUERY, "documents": DOCUMENTS,
                                                "top_n": 1, "return_documents": True})
        assert first.status_code == 200, first.text
        assert first.json()["results"] == [{"index": 1, "relevance_score": scores[1],
                                            "document": {"text": DOCUMENTS[1]}}]
        assert first.json()["model"] == "search" and first.json()["usage"] == {"total_tokens": 24}
        second = client.post("/v2/rerank", json={"model": "ji/jina-reranker-m0", "query": QUERY,
                                                 "documents": [{"text": d} for d in DOCUMENTS],
                                                 "return_documents": False})
        assert second.status_code == 200, second.text
        assert [r["index"] for r in second.json()["results"]] == [1, 0, 2]
        assert all("document" not in r for r in second.json()["results"])
        bad = client.post("/v1/rerank", json={"model": "search", "query": QUERY, "documents": DOCUMENTS,
                                              "top_n": 0})
        assert bad.status_code == 400 and "top_n" in bad.text  # the gateway's own check, before Jina
    assert [(call.model, call.top_n) for call in api.rerank_calls] == \
        [("jina-reranker-v2-base-multilingual", 1), ("jina-reranker-m0", None)] and not api.refusals


def test_embeddings_through_the_gateway_with_the_openai_sdk(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    api = fake(upstream)
    client = gateway.openai_client()
    answer = client.embeddings.create(model="query-embed", input="alpha", dimensions=64)
    assert answer.data[0].embedding == pytest.approx(vector("alpha", 64), abs=1e-6)
    assert answer.usage.prompt_tokens == 1
    assert api.embedding_requests[-1] == {"model": "jina-embeddings-v3", "input": ["alpha"],
                                          "task": "retrieval.query", "dimensions": 64, "embedding_type": "base64"}


def test_chat_is_a_clear_400(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    fake(upstream)
    client = gateway.openai_client()
    with pytest.raises(Exception) as caught:
        client.chat.completions.create(model="ji/jina-embeddings-v3", messages=[{"role": "user", "content": "hi"}])
    assert getattr(caught.value, "status_code", None) == 400
    assert "Jina AI serves embeddings and rerank only" in str(caught.value)
    assert upstream.requests == []

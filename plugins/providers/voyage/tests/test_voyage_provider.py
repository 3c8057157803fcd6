"""The voyage adapter against a fake Voyage AI API on a real socket
(:mod:`portway_voyage.testing`): the bodies it sends, how it reads answers
and errors, and the whole path through a gateway with httpx and the openai
SDK as clients."""

from __future__ import annotations

import base64
import importlib.metadata
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import portway_voyage
import pytest
from portway_voyage import ATLAS_BASE_URL, VoyageProvider
from portway_voyage.testing import VoyageAPI, vector

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.gateway import GatewayServer
from portway.testing.script import relevance

T = TypeVar("T")
KEY = "pa-voyage-test-key-0123456789"
QUERY = "capital of France"
DOCUMENTS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "Bananas are yellow."]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def run(upstream: FakeUpstream, action: Callable[[VoyageProvider], Awaitable[T]], **config: Any) -> T:
    settings = ProviderConfig.model_validate({"type": "voyage", "api_key": KEY, "base_url": upstream.url + "/v1",
                                              **config})
    return run_provider(VoyageProvider("vo", settings), action)


def fake(upstream: FakeUpstream) -> VoyageAPI:
    return VoyageAPI(api_key=KEY).install(upstream)


def embed(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.embeddings({"model": "voyage-3.5", **body}, None))


def rerank(upstream: FakeUpstream, **body: Any) -> dict[str, Any]:
    return run(upstream, lambda p: p.rerank({"model": "rerank-2.5", "query": QUERY, "documents": DOCUMENTS, **body},
                                            None))


def failure(upstream: FakeUpstream, action: Callable[[VoyageProvider], Awaitable[Any]]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        run(upstream, action)
    assert KEY not in caught.value.message
    return caught.value


# -- configuration --------------------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOYAGE_API_KEY", "pa-env-key-0123456789")
    provider = VoyageProvider("vo", ProviderConfig(type="voyage"))
    assert provider.base_url == "https://api.voyageai.com/v1"
    assert provider.auth_headers() == {"authorization": "Bearer pa-env-key-0123456789"}
    assert {"voyage-3.5", "rerank-2.5"} <= set(provider.models())


def test_a_mongodb_atlas_key_goes_to_atlas_unless_a_base_url_is_given() -> None:
    atlas = VoyageProvider("vo", ProviderConfig(type="voyage", api_key="al-atlas-key-0123456789"))
    assert atlas.base_url == ATLAS_BASE_URL == "https://ai.mongodb.com/v1"
    given = VoyageProvider("vo", ProviderConfig(type="voyage", api_key="al-atlas-key", base_url="https://x.test/v1"))
    assert given.base_url == "https://x.test/v1"


def test_registration() -> None:
    registered: list[type] = []
    portway_voyage.register_providers(registered.append)
    assert registered == [VoyageProvider] and portway_voyage.PORTWAY_PLUGIN_KIND == "provider"
    entry = [e for e in importlib.metadata.entry_points(group="portway.plugins") if e.name == "voyage"]
    assert [e.value for e in entry] == ["portway_voyage"]


# -- embeddings ------------------------------------------------------------------------------------


def test_embeddings_request_and_answer(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = embed(upstream, input=["a b", "c"], dimensions=256, encoding_format="float", user="u-1",
                   input_type="document", truncation=False, other_provider_key=1)
    assert upstream.last.path == "/v1/embeddings" and not api.refusals
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    # dimensions renamed, OpenAI's "float" (no Voyage value) and user left out, an unknown key dropped.
    assert upstream.last.json() == {"input": ["a b", "c"], "model": "voyage-3.5", "input_type": "document",
                                    "output_dimension": 256, "truncation": False}
    assert result == {"object": "list", "model": "voyage-3.5", "usage": {"prompt_tokens": 3, "total_tokens": 3},
                      "data": [{"object": "embedding", "index": 0, "embedding": vector("a b", 256)},
                               {"object": "embedding", "index": 1, "embedding": vector("c", 256)}]}


def test_base64_is_asked_of_voyage_and_passed_on(upstream: FakeUpstream) -> None:
    fake(upstream)
    result = embed(upstream, input="a", encoding_format="base64")
    assert upstream.last.json()["encoding_format"] == "base64"
    encoded = result["data"][0]["embedding"]
    assert struct.unpack("<8f", base64.b64decode(encoded)) == pytest.approx(vector("a"), abs=1e-6)


def test_integer_dtypes_come_back_as_lists_even_when_base64_is_asked(upstream: FakeUpstream) -> None:
    fake(upstream)
    result = embed(upstream, input="a", encoding_format="base64", output_dtype="int8")
    assert "encoding_format" not in upstream.last.json() and upstream.last.json()["output_dtype"] == "int8"
    assert result["data"][0]["embedding"] == [round(v * 127) for v in vector("a")]


@pytest.mark.parametrize(("given", "sent"), [("query", "query"), ("search_query", "query"),
                                             ("search_document", "document")])
def test_input_type_takes_cohere_names_too(upstream: FakeUpstream, given: str, sent: str) -> None:
    api = fake(upstream)
    embed(upstream, input="a", input_type=given)
    assert upstream.last.json()["input_type"] == sent and not api.refusals


@pytest.mark.parametrize(("extra", "param"), [({"input": [[1, 2, 3]]}, "input"), ({"input": [1, 2]}, "input"),
                                              ({"input_type": "clustering"}, "input_type")])
def test_embedding_refusals_before_anything_is_sent(upstream: FakeUpstream, extra: dict[str, Any],
                                                    param: str) -> None:
    with pytest.raises(PortwayError) as caught:
        embed(upstream, **{"input": "x", **extra})
    assert (caught.value.kind, caught.value.param) == ("bad_request", param) and upstream.requests == []


@pytest.mark.parametrize("answer", [
    {"object": "list", "data": [{"embedding": [0.1], "index": 0}], "usage": {"total_tokens": 1}},  # one for two
    {"object": "list", "data": [{"embedding": [0.1], "index": 0}, {"embedding": [0.2], "index": 0}],
     "usage": {"total_tokens": 1}},
    {"object": "list", "data": [{"embedding": [0.1], "index": 0}, {"embedding": [0.2], "index": 5}],
     "usage": {"total_tokens": 1}},
    {"object": "list", "data": [{"embedding": "AAAA", "index": 0}, {"embedding": [0.2], "index": 1}],
     "usage": {"total_tokens": 1}},
    {"object": "list", "data": [{"embedding": [0.1], "index": 0}, {"embedding": [0.2], "index": 1}]},
    {"data": "nope"},
])
def test_malformed_embeddings(upstream: FakeUpstream, answer: dict[str, Any]) -> None:
    upstream.add("/v1/embeddings", json_reply(answer))
    error = failure(upstream, lambda p: p.embeddings({"model": "voyage-3.5", "input": ["a", "b"]}, None))
    assert (error.kind, error.status) == ("server_error", 502) and "malformed" in error.message


# -- rerank ----------------------------------------------------------------------------------------


def test_rerank_request_and_answer(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    result = rerank(upstream, top_n=2, return_documents=True, truncation=False, rank_fields=["text"])
    assert upstream.last.path == "/v1/rerank" and not api.refusals
    assert upstream.last.json() == {"query": QUERY, "documents": DOCUMENTS, "model": "rerank-2.5", "top_k": 2,
                                    "return_documents": False, "truncation": False}
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    assert result["results"] == [{"index": 1, "relevance_score": scores[1]},
                                 {"index": 0, "relevance_score": scores[0]}]
    assert result["usage"] == {"total_tokens": 3 * 3 + 6 + 6 + 3}  # query x documents + documents, in words


def test_rerank_takes_document_objects_as_their_text(upstream: FakeUpstream) -> None:
    fake(upstream)
    rerank(upstream, documents=[{"text": d, "title": "t"} for d in DOCUMENTS])
    assert upstream.last.json()["documents"] == DOCUMENTS and "top_k" not in upstream.last.json()


def test_max_tokens_per_doc_is_refused(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        rerank(upstream, max_tokens_per_doc=100)
    assert (caught.value.kind, caught.value.param) == ("bad_request", "max_tokens_per_doc")
    assert upstream.requests == []


@pytest.mark.parametrize("answer", [
    {"data": [{"index": 7, "relevance_score": 0.5}], "usage": {"total_tokens": 1}},
    {"data": [{"index": 0, "relevance_score": "high"}], "usage": {"total_tokens": 1}},
    {"data": [{"index": 0, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.4}],
     "usage": {"total_tokens": 1}},
    {"results": [{"index": 0, "relevance_score": 0.5}], "usage": {"total_tokens": 1}},  # Jina's shape, not Voyage's
    {"data": [{"index": 0, "relevance_score": 0.5}]},
    ["not", "an", "object"],
])
def test_malformed_rerank_answers(upstream: FakeUpstream, answer: Any) -> None:
    upstream.add("/v1/rerank", json_reply(answer))
    error = failure(upstream, lambda p: p.rerank({"model": "rerank-2.5", "query": QUERY, "documents": DOCUMENTS},
                                                 None))
    assert (error.kind, error.status) == ("server_error", 502)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "headers", "kind", "message"), [
    (400, {"detail": f"bad input for key {KEY}"}, {}, "bad_request", "bad input for key [redacted]"),
    (401, {"detail": "Provided API key is invalid."}, {}, "authentication", "Provided API key is invalid."),
    (422, {"detail": [{"loc": ["body", "top_k"], "msg": "Input should be greater than 0", "type": "x"}]}, {},
     "bad_request", "top_k: Input should be greater than 0"),
    (429, {"detail": "You have exceeded your TPM rate limit."}, {"retry-after": "9"}, "rate_limit", "TPM"),
    (500, {"detail": "The server failed to process the request."}, {}, "server_error", "failed to process"),
    (503, {"detail": "not ready yet"}, {}, "overloaded", "not ready yet"),
])
def test_errors(upstream: FakeUpstream, status: int, body: dict[str, Any], headers: dict[str, str], kind: str,
                message: str) -> None:
    upstream.json("/v1/embeddings", body, status=status, headers=headers)
    error = failure(upstream, lambda p: p.embeddings({"model": "voyage-3.5", "input": "a"}, None))
    assert (error.status, error.kind, error.retry_after) == (status, kind, headers.get("retry-after"))
    assert message in error.message and "detail" not in error.message


def test_wrong_key(upstream: FakeUpstream) -> None:
    VoyageAPI(api_key="pa-another-key-0123456789").install(upstream)
    error = failure(upstream, lambda p: p.rerank({"model": "rerank-2.5", "query": QUERY, "documents": DOCUMENTS},
                                                 None))
    assert (error.status, error.kind) == (401, "authentication") and "Provided API key is invalid." in error.message


# -- through a gateway ------------------------------------------------------------------------------


@pytest.fixture
def gateway(upstream: FakeUpstream) -> Iterator[GatewayServer]:
    config = {"providers": {"vo": {"type": "voyage", "api_key": KEY, "base_url": upstream.url + "/v1"}},
              "models": {"search": {"target": {"provider": "vo", "model": "rerank-2.5"}},
                         "query-embed": {"target": {"provider": "vo", "model": "voyage-3.5",
                                                    "params": {"input_type": "query"}}}}}
    with GatewayServer(config) as server:
        yield server


def test_rerank_through_the_gateway_with_httpx(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    api = fake(upstream)
    scores = [relevance(QUERY, d) for d in DOCUMENTS]
    with httpx.Client(base_url=gateway.url, headers={"authorization": "Bearer portway-test"}, timeout=30) as client:
        first = client.post("/v1/rerank", json={"model": "search", "query": QUERY, "documents": DOCUMENTS,
                                                "top_n": 2, "return_documents": True})
        assert first.status_code == 200, first.text
        assert [(r["index"], r["relevance_score"], r["document"]) for r in first.json()["results"]] == \
            [(1, scores[1], {"text": DOCUMENTS[1]}), (0, scores[0], {"text": DOCUMENTS[0]})]
        assert first.json()["model"] == "search" and first.json()["usage"]["total_tokens"] > 0
        second = client.post("/v2/rerank", json={"model": "vo/rerank-2.5", "query": QUERY,
                                                 "documents": [{"text": d} for d in DOCUMENTS]})
        assert second.status_code == 200, second.text
        assert [r["index"] for r in second.json()["results"]] == [1, 0, 2]
        assert all("document" not in r for r in second.json()["results"])
        refused = client.post("/v1/rerank", json={"model": "search", "query": QUERY, "documents": DOCUMENTS,
                                                  "max_tokens_per_doc": 10})
        assert refused.status_code == 400 and "max_tokens_per_doc" in refused.text
    assert [call.top_n for call in api.rerank_calls] == [2, None] and not api.refusals


def test_embeddings_through_the_gateway_with_the_openai_sdk(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    api = fake(upstream)
    client = gateway.openai_client()
    answer = client.embeddings.create(model="query-embed", input=["alpha", "beta"], dimensions=512)
    assert [len(item.embedding) for item in answer.data] == [512, 512]
    assert answer.data[0].embedding == pytest.approx(vector("alpha", 512), abs=1e-6)
    assert api.embedding_requests[-1] == {"input": ["alpha", "beta"], "model": "voyage-3.5", "input_type": "query",
                                          "output_dimension": 512, "encoding_format": "base64"}


def test_chat_is_a_clear_400(upstream: FakeUpstream, gateway: GatewayServer) -> None:
    fake(upstream)
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for path, body in (("/v1/chat/completions", {"model": "vo/voyage-3.5", "messages": [{"role": "user",
                                                                                            "content": "hi"}]}),
                           ("/v1/chat/completions", {"model": "vo/voyage-3.5", "stream": True,
                                                     "messages": [{"role": "user", "content": "hi"}]}),
                           ("/v1/messages", {"model": "vo/voyage-3.5", "max_tokens": 10,
                                             "messages": [{"role": "user", "content": "hi"}]})):
            response = client.post(path, json=body, headers={"authorization": "Bearer portway-test",
                                                             "x-api-key": "portway-test"})
            assert response.status_code == 400, (path, response.text)
            assert "embeddings and rerank only" in response.text, response.text
    assert upstream.requests == []

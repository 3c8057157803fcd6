"""POST /v1/rerank (and /v2/rerank): Cohere's and Jina's shape in front of
any provider that ranks, through a running gateway; the canonical answer's
checks, exactly."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from portway.formats import MalformedAnswer
from portway.formats.rerank import check_rerank, document_texts, finish_rerank
from portway.testing import FakeUpstream
from portway.testing.gateway import GatewayServer
from portway.testing.openai_chat import OpenAIChatAPI

DOCS = ["Berlin is the capital of Germany.", "Paris is the capital of France.", "The Eiffel Tower is in Paris.",
        "Bananas are yellow."]
QUERY = "What is the capital of France?"


@pytest.fixture(scope="module")
def gateway() -> Any:
    with FakeUpstream() as upstream:
        OpenAIChatAPI([], api_key="sk-other-00000000000").install(upstream)
        config = {"providers": {"mock": {"type": "mock"},
                                "oai": {"type": "openai", "api_key": "sk-other-00000000000",
                                        "base_url": upstream.url + "/v1"}},
                  "models": {"ranker": {"targets": [{"provider": "oai", "model": "gpt-4o"},
                                                    {"provider": "mock", "model": "rerank-1"}]}}}
        with GatewayServer(config) as server:
            yield server


def post(server: GatewayServer, body: Any, path: str = "/v1/rerank") -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers={"authorization": "Bearer k"}, timeout=10)


def test_ranked_cut_and_documents_returned(gateway: GatewayServer) -> None:
    response = post(gateway, {"model": "mock/rerank-1", "query": QUERY, "documents": DOCS, "top_n": 2,
                              "return_documents": True})
    assert response.status_code == 200
    answer = response.json()
    assert [r["index"] for r in answer["results"]] == [1, 0]
    assert [r["document"]["text"] for r in answer["results"]] == [DOCS[1], DOCS[0]]
    assert answer["results"][0]["relevance_score"] > answer["results"][1]["relevance_score"] > 0
    assert answer["model"] == "mock/rerank-1" and answer["id"] == "rerank-mock"
    assert answer["usage"]["total_tokens"] > 0
    assert response.headers["x-portway-provider"] == "mock"


def test_every_document_by_default_and_cohere_v2_path_with_text_objects(gateway: GatewayServer) -> None:
    plain = post(gateway, {"model": "mock/rerank-1", "query": QUERY, "documents": DOCS}).json()
    assert sorted(r["index"] for r in plain["results"]) == [0, 1, 2, 3]
    assert all("document" not in r for r in plain["results"])
    scores = [r["relevance_score"] for r in plain["results"]]
    assert scores == sorted(scores, reverse=True)
    v2 = post(gateway, {"model": "mock/rerank-1", "query": QUERY, "documents": [{"text": d} for d in DOCS]},
              "/v2/rerank").json()
    assert v2["results"] == plain["results"]


def test_a_provider_without_rerank_says_so_and_an_alias_falls_back(gateway: GatewayServer) -> None:
    response = post(gateway, {"model": "oai/gpt-4o", "query": QUERY, "documents": DOCS})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported"
    assert error["message"] == "provider 'oai' (type openai) does not support rerank"
    via_alias = post(gateway, {"model": "ranker", "query": QUERY, "documents": DOCS, "top_n": 1})
    assert via_alias.status_code == 200 and via_alias.headers["x-portway-provider"] == "mock"
    assert [r["index"] for r in via_alias.json()["results"]] == [1]


@pytest.mark.parametrize(("body", "param"), [
    ({"query": QUERY, "documents": DOCS}, "model"),
    ({"model": "mock/r", "documents": DOCS}, "query"),
    ({"model": "mock/r", "query": "", "documents": DOCS}, "query"),
    ({"model": "mock/r", "query": QUERY, "documents": []}, "documents"),
    ({"model": "mock/r", "query": QUERY, "documents": [5]}, "documents[0]"),
    ({"model": "mock/r", "query": QUERY, "documents": [{"title": "x"}]}, "documents[0].text"),
    ({"model": "mock/r", "query": QUERY, "documents": DOCS, "top_n": 0}, "top_n"),
    ({"model": "mock/r", "query": QUERY, "documents": DOCS, "top_n": "2"}, "top_n"),
    ({"model": "mock/r", "query": QUERY, "documents": DOCS, "return_documents": "yes"}, "return_documents"),
])
def test_bad_requests_name_the_field(gateway: GatewayServer, body: dict[str, Any], param: str) -> None:
    response = post(gateway, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_an_upstream_failure_keeps_its_status(gateway: GatewayServer) -> None:
    response = post(gateway, {"model": "mock/error-429", "query": QUERY, "documents": DOCS})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"


# -- the canonical answer --------------------------------------------------------------------------------


def reason(data: Any, count: int = 2) -> str:
    with pytest.raises(MalformedAnswer) as caught:
        check_rerank(data, count)
    return str(caught.value)


def test_check_rerank_reasons() -> None:
    good = {"results": [{"index": 1, "relevance_score": 0.5}, {"index": 0, "relevance_score": 1}], "usage": {}}
    assert check_rerank(good, 2) is good
    assert reason([]) == "the rerank answer is not a JSON object"
    assert reason({}) == "results is missing or not a list"
    assert reason({"results": [1]}) == "results[0] is not an object"
    assert reason({"results": [{"index": 2, "relevance_score": 1}]}) == \
        "results[0].index is not the position of one of the 2 documents"
    assert reason({"results": [{"index": -1, "relevance_score": 1}]}).startswith("results[0].index")
    assert reason({"results": [{"index": True, "relevance_score": 1}]}).startswith("results[0].index")
    assert reason({"results": [{"index": 0, "relevance_score": 1}, {"index": 0, "relevance_score": 1}]}) == \
        "results[1].index 0 appears twice"
    for score in ("1", None, float("nan"), float("inf"), True):
        assert reason({"results": [{"index": 0, "relevance_score": score}]}) == \
            "results[0].relevance_score is not a number"
    assert reason({"results": [], "usage": 5}) == "usage is not an object"
    assert check_rerank({"results": [], "usage": None}, 2)["results"] == []


def test_finish_rerank() -> None:
    body = {"model": "m", "query": "q", "documents": ["a", {"text": "b"}, "c"], "top_n": 2, "return_documents": True}
    answer = {"id": "r1", "results": [{"index": 0, "relevance_score": 0.2}, {"index": 2, "relevance_score": 0.9},
                                      {"index": 1, "relevance_score": 0.2}], "usage": {"search_units": 1}, "meta": {}}
    assert finish_rerank(answer, body) == {
        "id": "r1", "model": "m", "usage": {"search_units": 1},
        "results": [{"index": 2, "relevance_score": 0.9, "document": {"text": "c"}},
                    {"index": 0, "relevance_score": 0.2, "document": {"text": "a"}}]}
    plain = finish_rerank({"id": 5, "results": answer["results"]}, {**body, "top_n": None, "return_documents": None})
    assert plain["id"].startswith("rerank-") and len(plain["id"]) == 39 and "usage" not in plain
    assert [r["index"] for r in plain["results"]] == [2, 0, 1]  # equal scores: by position
    assert document_texts(body) == ["a", "b", "c"]

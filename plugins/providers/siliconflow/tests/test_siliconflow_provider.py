"""The SiliconFlow adapter against the fake SiliconFlow API: the two sites,
the parameters it renames / drops / refuses, reasoning, its error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from portway_siliconflow import SiliconFlowConfig, SiliconFlowProvider
from portway_siliconflow.testing import SiliconFlowAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, Reply, json_reply, run_provider
from portway.testing.script import say

KEY = "sk-siliconflow-test-0123456789"
ASK = [{"role": "user", "content": "Hi"}]


def flow(upstream: FakeUpstream) -> SiliconFlowProvider:
    config = SiliconFlowConfig(type="siliconflow", api_key=KEY, base_url=upstream.url + "/v1")
    return SiliconFlowProvider("sf", config)


def ask(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    body = {"model": "Qwen/Qwen3-8B", "messages": ASK, **extra}
    return run_provider(flow(upstream), lambda p: p.chat(body, None))


@pytest.mark.parametrize(("region", "url"), [(None, "https://api.siliconflow.cn/v1"),
                                             ("intl", "https://api.siliconflow.com/v1")])
def test_sites_and_key_variable(monkeypatch: pytest.MonkeyPatch, region: str | None, url: str) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", KEY)
    provider = SiliconFlowProvider("sf", SiliconFlowConfig(type="siliconflow", **({"region": region} if region else {})))
    assert provider.base_url == url and provider.auth_headers() == {"authorization": f"Bearer {KEY}"}


def test_renames_and_drops(fake_upstream: FakeUpstream) -> None:
    api = SiliconFlowAPI([say("ok")], api_key=KEY).install(fake_upstream)
    ask(fake_upstream, max_completion_tokens=99, seed=3, presence_penalty=0.4, user="u", parallel_tool_calls=True,
        enable_thinking=False, top_k=20, messages=[{"role": "developer", "content": "Terse."}, *ASK])
    sent = api.calls[0].body
    assert sent["max_tokens"] == 99 and sent["enable_thinking"] is False and sent["top_k"] == 20
    assert not {"max_completion_tokens", "seed", "presence_penalty", "user", "parallel_tool_calls"} & set(sent)
    assert sent["messages"][0]["role"] == "system"


@pytest.mark.parametrize(("extra", "param"), [
    ({"logprobs": True}, "logprobs"), ({"logit_bias": {"9": 1}}, "logit_bias"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    SiliconFlowAPI([say("never")], api_key=KEY).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        ask(fake_upstream, **extra)
    assert info.value.param == param and fake_upstream.requests == []


def test_reasoning_content_passes(fake_upstream: FakeUpstream) -> None:
    SiliconFlowAPI([say("Paris", reasoning="France's capital.")], api_key=KEY).install(fake_upstream)
    assert ask(fake_upstream)["choices"][0]["message"]["reasoning_content"] == "France's capital."


@pytest.mark.parametrize(("reply", "kind", "text"), [
    (json_reply({"code": 20012, "message": "Model does not exist. Please check it carefully.", "data": None}, 400),
     "bad_request", "Model does not exist"),
    (Reply(status=401, body=b"Invalid token", content_type="text/plain"), "authentication", "Invalid token"),
    (json_reply({"code": 50603, "message": "Request was rejected due to rate limiting. TPM limit reached.",
                 "data": None}, 429, {"retry-after": "12"}), "rate_limit", "TPM limit reached"),
])
def test_error_bodies(fake_upstream: FakeUpstream, reply: Reply, kind: str, text: str) -> None:
    fake_upstream.add("/v1/chat/completions", reply)
    with pytest.raises(ProviderError) as info:
        ask(fake_upstream)
    assert info.value.kind == kind and text in info.value.message and KEY not in info.value.message


def test_rerank_request_and_answer(fake_upstream: FakeUpstream) -> None:
    api = SiliconFlowAPI([], api_key=KEY).install(fake_upstream)
    body = {"model": "BAAI/bge-reranker-v2-m3", "query": "capital of France",
            "documents": ["Berlin is big.", {"text": "Paris is the capital of France."}], "top_n": 1}
    answer = run_provider(flow(fake_upstream), lambda p: p.rerank(body, None))
    assert api.rerank_calls[0].documents == ["Berlin is big.", "Paris is the capital of France."]
    assert api.rerank_calls[0].top_n == 1
    assert answer["results"] == [{"index": 1, "relevance_score": api.rerank_calls[0].scores[1]}]
    assert answer["id"] == "rerank-fake-1" and answer["usage"]["total_tokens"] > 0


def test_rerank_answer_with_a_bad_index_is_malformed(fake_upstream: FakeUpstream) -> None:
    fake_upstream.add("/v1/rerank", json_reply({"results": [{"index": 7, "relevance_score": 0.5}]}))
    body = {"model": "BAAI/bge-reranker-v2-m3", "query": "q", "documents": ["a", "b"]}
    with pytest.raises(ProviderError) as info:
        run_provider(flow(fake_upstream), lambda p: p.rerank(body, None))
    assert info.value.status == 502 and "index" in info.value.message

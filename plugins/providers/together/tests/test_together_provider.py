"""The Together AI adapter against the Together fake (``portway_together.testing``)
over a real socket: the request it sends, what it refuses before sending,
and how it reads Together's finish reasons, reasoning and errors."""

from __future__ import annotations

from typing import Any

import pytest
from portway_together import TogetherProvider
from portway_together.testing import TogetherAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import call, say

KEY = "together-test-secret-0123456789"
MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


class QuirklessProvider(OpenAICompatibleProvider):
    """Together's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "together-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = TogetherProvider) -> Any:
    return cls("together", ProviderConfig(type=cls.type, api_key=KEY, base_url=upstream.url + "/v1"))


def serve(upstream: FakeUpstream, *turns: Any) -> TogetherAPI:
    return TogetherAPI(list(turns) or [say("Hi.")], api_key=KEY).install(upstream)


def chat(provider: Any, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(body, None))


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], **extra}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "together-from-env-987654")
    provider = TogetherProvider("together", ProviderConfig(type="together"))
    assert provider.base_url == "https://api.together.xyz/v1"
    assert provider.auth_headers() == {"authorization": "Bearer together-from-env-987654"}


def test_eos_is_stop_whole_and_streamed(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Hi."), say("Hi."), say("Hi."))
    assert chat(adapter(fake_upstream, QuirklessProvider), body())["choices"][0]["finish_reason"] == "eos"
    assert chat(adapter(fake_upstream), body())["choices"][0]["finish_reason"] == "stop"
    chunks = run_provider(adapter(fake_upstream), lambda p: collect_stream(p, body(stream=True)))
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")][-1] == "stop"


def test_tool_calls_keep_their_finish_reason(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, call("get_weather", {"city": "Paris"}))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    assert chat(adapter(fake_upstream), body(tools=tools))["choices"][0]["finish_reason"] == "tool_calls"


def test_the_request_as_together_reads_it(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    chat(adapter(fake_upstream), body(max_completion_tokens=64, max_tokens=10, user="u-1", parallel_tool_calls=False,
                                      n=2, seed=7, top_k=40, repetition_penalty=1.1))
    sent = fake_upstream.last.json()
    assert fake_upstream.last.path == "/v1/chat/completions"
    assert fake_upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent
    assert "user" not in sent and "parallel_tool_calls" not in sent
    assert (sent["n"], sent["seed"], sent["top_k"], sent["repetition_penalty"]) == (2, 7, 40, 1.1)
    assert not api.refusals


def test_logprobs_are_refused_before_sending(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(logprobs=True, top_logprobs=2))
    assert (caught.value.status, caught.value.param) == (400, "logprobs")
    assert not fake_upstream.requests
    with pytest.raises(ProviderError, match="valid integer"):  # what Together says to OpenAI's boolean
        chat(adapter(fake_upstream, QuirklessProvider), body(logprobs=True))


def test_reasoning_is_mapped_to_reasoning_content(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("9.9.", reasoning="Compare tenths."), say("9.9.", reasoning="Compare tenths."))
    message = chat(adapter(fake_upstream), body(model="deepseek-ai/DeepSeek-R1"))["choices"][0]["message"]
    assert message["reasoning_content"] == "Compare tenths." and "reasoning" not in message
    chunks = run_provider(adapter(fake_upstream),
                          lambda p: collect_stream(p, body(model="deepseek-ai/DeepSeek-R1", stream=True)))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Compare tenths."


def test_embeddings(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    answer = run_provider(adapter(fake_upstream),
                          lambda p: p.embeddings({"model": "BAAI/bge-large-en-v1.5", "input": ["a", "b"]}, None))
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert fake_upstream.last.path == "/v1/embeddings" and api.embedding_requests


def test_errors(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(404, f"Unable to access model xyz with key {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert (caught.value.status, caught.value.kind) == (404, "not_found")
    assert "Unable to access model" in caught.value.message and KEY not in caught.value.message


def test_capabilities(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(model="deepseek-ai/DeepSeek-R1", tools=tools))
    assert (caught.value.status, caught.value.param) == (400, "tools")
    assert not fake_upstream.requests

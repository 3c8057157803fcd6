"""The sambanova adapter against the fake SambaNova API on a real socket:
the URL and key it sends, each quirk, the reasoning field, errors, and the
capability table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_sambanova import SambaNovaProvider
from portway_sambanova.testing import SambaNovaAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.providers import collect_stream
from portway.testing.script import say

KEY = "sambanova-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream) -> SambaNovaProvider:
    settings = ProviderConfig.model_validate({"type": "sambanova", "api_key": KEY, "base_url": upstream.url + "/v1"})
    return SambaNovaProvider("sn", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream, *steps: Any, api_key: str = KEY) -> SambaNovaAPI:
    return SambaNovaAPI(list(steps) or [say("Hello")], api_key=api_key).install(upstream)


def test_defaults() -> None:
    assert SambaNovaProvider.default_base_url == "https://api.sambanova.ai/v1"
    assert SambaNovaProvider.env_key == "SAMBANOVA_API_KEY"


def test_url_and_bearer_key(upstream: FakeUpstream) -> None:
    fake(upstream)
    assert chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO})["choices"][0]["message"]["content"] == "Hello"
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"


def test_unimplemented_and_unknown_keys_dropped(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO, "frequency_penalty": 0.5, "presence_penalty": 0.2,
                    "user": "u-1", "seed": 7})
    sent = api.calls[0].body
    assert not {"frequency_penalty", "presence_penalty", "user"} & set(sent) and sent["seed"] == 7


def test_text_response_format_not_sent(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO, "response_format": {"type": "text"}})
    assert "response_format" not in api.calls[0].body


def test_developer_sent_as_system(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "gpt-oss-120b", "messages": [{"role": "developer", "content": "Be brief."}, *HELLO]})
    assert api.calls[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_reasoning_mapped_whole_and_streamed(upstream: FakeUpstream) -> None:
    fake(upstream, say("42", reasoning="Six sevens."), say("42", reasoning="Six sevens."))
    message = chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO})["choices"][0]["message"]
    assert message["reasoning_content"] == "Six sevens." and "reasoning" not in message
    chunks = run_provider(provider(upstream), lambda p: collect_stream(p, {"model": "gpt-oss-120b", "messages": HELLO,
                                                                           "stream": True}))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Six sevens."


def test_error_status_and_message_kept_key_redacted(upstream: FakeUpstream) -> None:
    upstream.answer_all(SambaNovaAPI([]).error(429, f"Rate limit exceeded for key {KEY}", retry_after="3"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO})
    error = caught.value
    assert (error.status, error.kind, error.retry_after) == (429, "rate_limit", "3")
    assert "Rate limit exceeded" in error.message and KEY not in error.message


@pytest.mark.parametrize("model", ["DeepSeek-R1-0528", "Qwen3-32B"])
def test_models_without_tools_refused(upstream: FakeUpstream, model: str) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": model, "messages": HELLO, "tools": WEATHER})
    assert caught.value.status == 400 and caught.value.param == "tools"
    assert upstream.requests == []


def test_images_only_for_vision_models(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "Meta-Llama-3.3-70B-Instruct", "messages": [{"role": "user", "content": content}]})
    assert caught.value.param == "messages[0].content[1]"
    chat(upstream, {"model": "Llama-4-Maverick-17B-128E-Instruct", "messages": [{"role": "user", "content": content}]})
    assert len(api.calls) == 1


def test_embeddings(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    answer = run_provider(provider(upstream), lambda p: p.embeddings({"model": "E5-Mistral-7B-Instruct",
                                                                      "input": ["a", "b"]}, None))
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert upstream.last.path == "/v1/embeddings" and api.embedding_requests[0]["input"] == ["a", "b"]

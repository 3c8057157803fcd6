"""The novita adapter against the fake Novita API on a real socket: the URL
and key it sends, each quirk, reasoning, errors, and embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_novita import NovitaProvider
from portway_novita.testing import NovitaAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.script import say

KEY = "sk_novita-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
MODEL = "deepseek/deepseek-v3.1"
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream) -> NovitaProvider:
    settings = ProviderConfig.model_validate({"type": "novita", "api_key": KEY,
                                              "base_url": upstream.url + "/openai/v1"})
    return NovitaProvider("nv", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream, *steps: Any) -> NovitaAPI:
    return NovitaAPI(list(steps) or [say("Hello")], api_key=KEY).install(upstream)


def test_defaults() -> None:
    assert NovitaProvider.default_base_url == "https://api.novita.ai/openai/v1"
    assert NovitaProvider.env_key == "NOVITA_API_KEY"


def test_url_key_rename_and_drops(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": MODEL, "messages": HELLO, "max_completion_tokens": 64, "user": "u-1",
                    "parallel_tool_calls": False, "tools": WEATHER, "tool_choice": "auto"})
    assert upstream.last.path == "/openai/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    sent = api.calls[0].body
    assert sent["max_tokens"] == 64 and sent["tool_choice"] == "auto"
    assert not {"max_completion_tokens", "user", "parallel_tool_calls"} & set(sent)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "weather"}}])
def test_forced_tool_choice_refused(upstream: FakeUpstream, choice: Any) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO, "tools": WEATHER, "tool_choice": choice})
    assert caught.value.status == 400 and caught.value.param == "tool_choice"
    assert upstream.requests == []


def test_reasoning_content_passed_on(upstream: FakeUpstream) -> None:
    fake(upstream, say("42", reasoning="Six sevens."))
    message = chat(upstream, {"model": "deepseek/deepseek-r1-0528", "messages": HELLO})["choices"][0]["message"]
    assert message["reasoning_content"] == "Six sevens."


def test_error_kept_and_key_redacted(upstream: FakeUpstream) -> None:
    upstream.answer_all(NovitaAPI([]).error(403, f"key {KEY} has no balance"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO})
    assert (caught.value.status, caught.value.kind) == (403, "permission")
    assert "no balance" in caught.value.message and KEY not in caught.value.message


def test_embeddings(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    answer = run_provider(provider(upstream), lambda p: p.embeddings({"model": "baai/bge-m3", "input": "x"}, None))
    assert len(answer["data"]) == 1 and upstream.last.path == "/openai/v1/embeddings" and api.embedding_requests

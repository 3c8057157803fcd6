"""The moonshot adapter against the fake Moonshot API on a real socket: the
URL and key it sends, each quirk, reasoning both ways, errors, and the
capability table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_moonshot import MoonshotProvider
from portway_moonshot.testing import MoonshotAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.providers import collect_stream
from portway.testing.script import say

KEY = "sk-moonshot-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream) -> MoonshotProvider:
    settings = ProviderConfig.model_validate({"type": "moonshot", "api_key": KEY, "base_url": upstream.url + "/v1"})
    return MoonshotProvider("kimi", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream, *steps: Any) -> MoonshotAPI:
    return MoonshotAPI(list(steps) or [say("Hello")], api_key=KEY).install(upstream)


def test_defaults() -> None:
    assert MoonshotProvider.default_base_url == "https://api.moonshot.ai/v1"
    assert MoonshotProvider.env_key == "MOONSHOT_API_KEY"


def test_url_bearer_key_and_max_tokens_renamed(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "kimi-k2.6", "messages": HELLO, "max_tokens": 300})
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert api.calls[0].body["max_completion_tokens"] == 300 and "max_tokens" not in api.calls[0].body


def test_at_most_five_choices(upstream: FakeUpstream) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "moonshot-v1-8k", "messages": HELLO, "n": 6})
    assert caught.value.status == 400 and caught.value.param == "n"
    assert upstream.requests == []


@pytest.mark.parametrize("field, value", [("tool_choice", "required"),
                                          ("response_format", {"type": "json_schema",
                                                               "json_schema": {"name": "x", "schema": {}}})])
def test_refused_before_sending(upstream: FakeUpstream, field: str, value: Any) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "kimi-k2.6", "messages": HELLO, "tools": WEATHER, field: value})
    assert caught.value.status == 400 and caught.value.param == field
    assert upstream.requests == []


def test_named_tool_choice_and_json_object_sent(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("{}"))
    named = {"type": "function", "function": {"name": "weather"}}
    chat(upstream, {"model": "moonshot-v1-8k", "messages": HELLO, "tools": WEATHER, "tool_choice": named,
                    "response_format": {"type": "json_object"}})
    assert api.calls[0].body["tool_choice"] == named


def test_developer_sent_as_system(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "kimi-k2.6", "messages": [{"role": "developer", "content": "Be brief."}, *HELLO]})
    assert api.calls[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_reasoning_whole_streamed_and_kept_in_history(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("42", reasoning="Six sevens."), say("42", reasoning="Six sevens."), say("Again"))
    assert chat(upstream, {"model": "kimi-k2-thinking", "messages": HELLO})["choices"][0]["message"][
        "reasoning_content"] == "Six sevens."
    chunks = run_provider(provider(upstream), lambda p: collect_stream(p, {"model": "kimi-k2-thinking",
                                                                           "messages": HELLO, "stream": True}))
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c.get("choices")) \
        == "Six sevens."
    history = [*HELLO, {"role": "assistant", "content": "42", "reasoning_content": "Six sevens."},
               {"role": "user", "content": "Again"}]
    chat(upstream, {"model": "kimi-k2-thinking", "messages": history})
    assert api.calls[2].body["messages"][1]["reasoning_content"] == "Six sevens."


def test_error_kept_and_key_redacted(upstream: FakeUpstream) -> None:
    upstream.answer_all(MoonshotAPI([]).error(401, f"Invalid Authentication: {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "kimi-k2.6", "messages": HELLO})
    assert (caught.value.status, caught.value.kind) == (401, "authentication")
    assert "Invalid Authentication" in caught.value.message and KEY not in caught.value.message


def test_images_only_for_vision_models(upstream: FakeUpstream) -> None:
    api = fake(upstream, say("A cat."))
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": content}]})
    assert caught.value.param == "messages[0].content[1]"
    chat(upstream, {"model": "moonshot-v1-8k-vision-preview", "messages": [{"role": "user", "content": content}]})
    assert len(api.calls) == 1


def test_no_embeddings(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        run_provider(provider(upstream), lambda p: p.embeddings({"model": "m", "input": "x"}, None))
    assert caught.value.status == 400 and caught.value.code == "unsupported"
    assert upstream.requests == []

"""The cerebras adapter against the fake Cerebras API on a real socket: the
URL and key it sends, each quirk (refusals, drops, the developer role, the
reasoning field), Cerebras's error shapes, and the capability table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_cerebras import CerebrasProvider
from portway_cerebras.testing import CerebrasAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.providers import collect_stream
from portway.testing.script import say

KEY = "csk-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream, **config: Any) -> CerebrasProvider:
    settings = ProviderConfig.model_validate({"type": "cerebras", "api_key": KEY, "base_url": upstream.url + "/v1",
                                              **config})
    return CerebrasProvider("cb", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any], **config: Any) -> dict[str, Any]:
    return run_provider(provider(upstream, **config), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream, *steps: Any) -> CerebrasAPI:
    return CerebrasAPI(list(steps) or [say("Hello")], api_key=KEY).install(upstream)


def test_defaults() -> None:
    assert CerebrasProvider.default_base_url == "https://api.cerebras.ai/v1"
    assert CerebrasProvider.env_key == "CEREBRAS_API_KEY"


def test_url_and_bearer_key(upstream: FakeUpstream) -> None:
    fake(upstream)
    answer = chat(upstream, {"model": "llama-3.3-70b", "messages": HELLO})
    assert answer["choices"][0]["message"]["content"] == "Hello"
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("param, value", [("frequency_penalty", 0.5), ("presence_penalty", 0.2),
                                          ("logit_bias", {"1234": -50})])
def test_refused_before_sending(upstream: FakeUpstream, param: str, value: Any) -> None:
    fake(upstream)
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "llama-3.3-70b", "messages": HELLO, param: value})
    assert caught.value.status == 400 and caught.value.param == param
    assert upstream.requests == []


def test_unset_penalties_and_steering_keys_not_sent(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "llama-3.3-70b", "messages": HELLO, "frequency_penalty": None,
                    "parallel_tool_calls": False, "service_tier": "auto"})
    sent = api.calls[0].body
    assert not {"frequency_penalty", "parallel_tool_calls", "service_tier"} & set(sent)


def test_developer_sent_as_system(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": "llama-3.3-70b", "messages": [{"role": "developer", "content": "Be brief."}, *HELLO]})
    assert api.calls[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_reasoning_mapped_whole_and_streamed(upstream: FakeUpstream) -> None:
    fake(upstream, say("42", reasoning="Six times seven."), say("42", reasoning="Six times seven."))
    answer = chat(upstream, {"model": "gpt-oss-120b", "messages": HELLO})
    message = answer["choices"][0]["message"]
    assert message["reasoning_content"] == "Six times seven." and "reasoning" not in message
    chunks = run_provider(provider(upstream), lambda p: collect_stream(p, {"model": "gpt-oss-120b",
                                                                           "messages": HELLO, "stream": True}))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Six times seven."
    assert not any("reasoning" in d for d in deltas)


def test_reasoning_not_sent_back(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    history = [*HELLO, {"role": "assistant", "content": "Hello", "reasoning_content": "greet"},
               {"role": "user", "content": "Again"}]
    chat(upstream, {"model": "gpt-oss-120b", "messages": history})
    assert "reasoning_content" not in api.calls[0].body["messages"][1]


def test_wrong_key_is_authentication_with_message_kept(upstream: FakeUpstream) -> None:
    CerebrasAPI([say("x")], api_key="csk-the-right-one-000000").install(upstream)
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "llama-3.3-70b", "messages": HELLO})
    error = caught.value
    assert (error.status, error.kind, error.code) == (401, "authentication", "wrong_api_key")
    assert "Wrong API Key" in error.message and KEY not in error.message


def test_missing_key_detail_body(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CEREBRAS_API_KEY", raising=False)
    fake(upstream)
    settings = ProviderConfig.model_validate({"type": "cerebras", "base_url": upstream.url + "/v1"})
    with pytest.raises(ProviderError) as caught:
        run_provider(CerebrasProvider("cb", settings), lambda p: p.chat({"model": "m", "messages": HELLO}, None))
    assert caught.value.status == 403 and caught.value.kind == "permission"
    assert caught.value.message.endswith(": Not authenticated")


def test_capabilities_refuse_images(upstream: FakeUpstream) -> None:
    fake(upstream)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(PortwayError) as caught:
        chat(upstream, {"model": "llama-3.3-70b",
                        "messages": [{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}]})
    assert caught.value.status == 400 and caught.value.param == "messages[0].content[1]"
    assert upstream.requests == []


def test_no_embeddings(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        run_provider(provider(upstream), lambda p: p.embeddings({"model": "m", "input": "x"}, None))
    assert caught.value.status == 400 and caught.value.code == "unsupported"
    assert upstream.requests == []

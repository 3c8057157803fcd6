"""The hyperbolic adapter against the fake Hyperbolic API on a real socket:
the URL and key it sends, its quirks, and errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_hyperbolic import HyperbolicProvider
from portway_hyperbolic.testing import HyperbolicAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, run_provider
from portway.testing.script import say

KEY = "hyperbolic-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
MODEL = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream) -> HyperbolicProvider:
    settings = ProviderConfig.model_validate({"type": "hyperbolic", "api_key": KEY, "base_url": upstream.url + "/v1"})
    return HyperbolicProvider("hb", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def fake(upstream: FakeUpstream) -> HyperbolicAPI:
    return HyperbolicAPI([say("Hello")], api_key=KEY).install(upstream)


def test_defaults() -> None:
    assert HyperbolicProvider.default_base_url == "https://api.hyperbolic.xyz/v1"
    assert HyperbolicProvider.env_key == "HYPERBOLIC_API_KEY"


def test_url_key_and_token_limit_renamed(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": MODEL, "messages": HELLO, "max_completion_tokens": 64})
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert api.calls[0].body["max_tokens"] == 64 and "max_completion_tokens" not in api.calls[0].body


def test_developer_sent_as_system(upstream: FakeUpstream) -> None:
    api = fake(upstream)
    chat(upstream, {"model": MODEL, "messages": [{"role": "developer", "content": "Be brief."}, *HELLO]})
    assert api.calls[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_error_kept_and_key_redacted(upstream: FakeUpstream) -> None:
    upstream.answer_all(HyperbolicAPI([]).error(429, f"Too many requests for {KEY}", retry_after="7"))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO})
    assert (caught.value.status, caught.value.kind, caught.value.retry_after) == (429, "rate_limit", "7")
    assert "Too many requests" in caught.value.message and KEY not in caught.value.message


def test_no_embeddings(upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError) as caught:
        run_provider(provider(upstream), lambda p: p.embeddings({"model": "m", "input": "x"}, None))
    assert caught.value.status == 400 and caught.value.code == "unsupported"
    assert upstream.requests == []

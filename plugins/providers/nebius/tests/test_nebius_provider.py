"""The nebius adapter against the fake Nebius API on a real socket: the URL
and key it sends, its quirk, FastAPI validation errors, and embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from portway_nebius import NebiusProvider
from portway_nebius.testing import NebiusAPI

from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

KEY = "nebius-test-secret-0123456789"
HELLO = [{"role": "user", "content": "Hi"}]
MODEL = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(scope="module")
def shared() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(shared: FakeUpstream) -> FakeUpstream:
    return shared.reset()


def provider(upstream: FakeUpstream) -> NebiusProvider:
    settings = ProviderConfig.model_validate({"type": "nebius", "api_key": KEY, "base_url": upstream.url + "/v1"})
    return NebiusProvider("nb", settings)


def chat(upstream: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider(upstream), lambda p: p.chat(body, None))


def test_defaults() -> None:
    assert NebiusProvider.default_base_url == "https://api.tokenfactory.nebius.com/v1"
    assert NebiusProvider.env_key == "NEBIUS_API_KEY"


def test_url_key_and_token_limit_renamed(upstream: FakeUpstream) -> None:
    api = NebiusAPI([say("Hello")], api_key=KEY).install(upstream)
    chat(upstream, {"model": MODEL, "messages": HELLO, "max_completion_tokens": 64})
    assert upstream.last.path == "/v1/chat/completions"
    assert upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert api.calls[0].body["max_tokens"] == 64 and "max_completion_tokens" not in api.calls[0].body


def test_validation_error_read(upstream: FakeUpstream) -> None:
    detail = [{"type": "less_than_equal", "loc": ["body", "n"], "msg": "Input should be less than or equal to 64"}]
    upstream.answer_all(json_reply({"detail": detail}, 422))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO, "n": 100})
    assert (caught.value.status, caught.value.kind) == (422, "bad_request")
    assert caught.value.message.endswith("body.n: Input should be less than or equal to 64")


def test_plain_detail_read(upstream: FakeUpstream) -> None:
    upstream.answer_all(json_reply({"detail": "Invalid API key"}, 401))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": MODEL, "messages": HELLO})
    assert caught.value.kind == "authentication" and caught.value.message.endswith(": Invalid API key")


def test_openai_error_shape_still_read(upstream: FakeUpstream) -> None:
    upstream.answer_all(NebiusAPI([]).error(404, "The model `x` does not exist."))
    with pytest.raises(ProviderError) as caught:
        chat(upstream, {"model": "x", "messages": HELLO})
    assert caught.value.status == 404 and "does not exist" in caught.value.message


def test_embeddings(upstream: FakeUpstream) -> None:
    api = NebiusAPI([], api_key=KEY).install(upstream)
    answer = run_provider(provider(upstream), lambda p: p.embeddings({"model": "BAAI/bge-en-icl", "input": "x"}, None))
    assert len(answer["data"]) == 1 and upstream.last.path == "/v1/embeddings" and api.embedding_requests

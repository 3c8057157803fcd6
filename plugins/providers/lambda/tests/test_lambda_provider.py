"""The Lambda adapter: its URL and key variable, the bearer key on the wire,
and embeddings refused (Lambda has no embeddings endpoint)."""

from __future__ import annotations

import pytest
from portway_lambda import LambdaProvider
from portway_lambda.testing import LambdaAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError
from portway.testing import FakeUpstream, run_provider
from portway.testing.script import say

KEY = "secret_lambda-test_0123456789"


def test_defaults_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    provider = LambdaProvider("lambda", ProviderConfig(type="lambda"))
    assert provider.base_url == "https://api.lambda.ai/v1"
    assert provider.auth_headers() == {"authorization": f"Bearer {KEY}"}


def test_chat_path_and_bearer_key(fake_upstream: FakeUpstream) -> None:
    api = LambdaAPI([say("Hi there")], api_key=KEY).install(fake_upstream)
    provider = LambdaProvider("lambda", ProviderConfig(type="lambda", api_key=KEY, base_url=fake_upstream.url + "/v1"))
    body = {"model": "llama3.1-8b-instruct", "messages": [{"role": "user", "content": "Hi"}]}
    answer = run_provider(provider, lambda p: p.chat(body, None))
    assert answer["choices"][0]["message"]["content"] == "Hi there"
    assert api.calls[0].request.path == "/v1/chat/completions"


def test_embeddings_are_a_clear_400(fake_upstream: FakeUpstream) -> None:
    provider = LambdaProvider("lambda", ProviderConfig(type="lambda", api_key=KEY, base_url=fake_upstream.url + "/v1"))
    with pytest.raises(PortwayError) as info:
        run_provider(provider, lambda p: p.embeddings({"model": "m", "input": "x"}, None))
    assert info.value.kind == "bad_request" and "embeddings" in info.value.message
    assert fake_upstream.requests == []

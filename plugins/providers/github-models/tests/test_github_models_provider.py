"""The GitHub Models adapter against the fake GitHub Models API: the token,
organization attribution, the parameters it renames / drops / refuses, the
capability table, GitHub's error codes."""

from __future__ import annotations

from typing import Any

import pytest
from portway_github_models import GitHubModelsConfig, GitHubModelsProvider
from portway_github_models.testing import GitHubModelsAPI

from portway.errors import PortwayError, ProviderError
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

TOKEN = "github_pat_11ABCDEFG0123456789"
ASK = [{"role": "user", "content": "Hi"}]


def github(upstream: FakeUpstream | None, **config: Any) -> GitHubModelsProvider:
    entry: dict[str, Any] = {"type": "github-models", "api_key": TOKEN, **config}
    if upstream is not None:
        entry.setdefault("base_url", upstream.url + "/inference")
    return GitHubModelsProvider("gh", GitHubModelsConfig.model_validate(entry))


def chat(provider: GitHubModelsProvider, **extra: Any) -> dict[str, Any]:
    body = {"model": "openai/gpt-4.1-mini", "messages": ASK, **extra}
    return run_provider(provider, lambda p: p.chat(body, None))


def test_defaults_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    provider = GitHubModelsProvider("gh", GitHubModelsConfig(type="github-models"))
    assert provider.base_url == "https://models.github.ai/inference"
    assert provider.auth_headers() == {"authorization": f"Bearer {TOKEN}"}
    org = GitHubModelsProvider("gh", GitHubModelsConfig(type="github-models", org="acme corp"))
    assert org.base_url == "https://models.github.ai/orgs/acme%20corp/inference"


def test_request_path_headers_and_quirks(fake_upstream: FakeUpstream) -> None:
    api = GitHubModelsAPI([say("Hello")], api_key=TOKEN).install(fake_upstream)
    answer = chat(github(fake_upstream), max_completion_tokens=40, user="u-7", parallel_tool_calls=True, n=1)
    assert answer["choices"][0]["message"]["content"] == "Hello"
    request = api.calls[0].request
    assert request.path == "/inference/chat/completions"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    sent = api.calls[0].body
    assert sent["max_tokens"] == 40 and not {"max_completion_tokens", "user", "parallel_tool_calls", "n"} & set(sent)


def test_org_attribution_path(fake_upstream: FakeUpstream) -> None:
    api = GitHubModelsAPI([say("Hello")], api_key=TOKEN, org="acme").install(fake_upstream)
    chat(github(fake_upstream, base_url=fake_upstream.url + "/orgs/acme/inference"))
    assert api.calls[0].request.path == "/orgs/acme/inference/chat/completions"


@pytest.mark.parametrize(("extra", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"logit_bias": {"1": 5}}, "logit_bias"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"model": "microsoft/Phi-4", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"model": "deepseek/DeepSeek-R1", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, "messages[0].content[0]"),
])
def test_refused_before_sending(fake_upstream: FakeUpstream, extra: dict[str, Any], param: str) -> None:
    GitHubModelsAPI([say("never")], api_key=TOKEN).install(fake_upstream)
    with pytest.raises(PortwayError) as info:
        chat(github(fake_upstream), **extra)
    assert info.value.param == param and fake_upstream.requests == []


def test_embeddings_are_a_clear_400() -> None:
    with pytest.raises(PortwayError) as info:
        run_provider(github(None), lambda p: p.embeddings({"model": "openai/text-embedding-3-small", "input": "x"},
                                                          None))
    assert info.value.kind == "bad_request" and "embeddings" in info.value.message


@pytest.mark.parametrize(("status", "code", "kind"), [
    (413, "tokens_limit_reached", "context_length"), (429, "RateLimitReached", "rate_limit"),
    (404, "unknown_model", "not_found"), (401, "unauthorized", "authentication")])
def test_github_error_codes(fake_upstream: FakeUpstream, status: int, code: str, kind: str) -> None:
    message = f"{code}: see details (token {TOKEN})"
    fake_upstream.add("/inference/chat/completions", json_reply(
        {"error": {"code": code, "message": message, "details": "..."}}, status, {"retry-after": "35"}))
    with pytest.raises(ProviderError) as info:
        chat(github(fake_upstream))
    error = info.value
    assert (error.status, error.kind, error.code) == (status, kind, code)
    assert code in error.message and TOKEN not in error.message
    assert error.retry_after == "35"

"""The OpenRouter adapter against the OpenRouter fake (``portway_openrouter.testing``)
over a real socket: attribution headers, reasoning, keep-alive comments,
errors reported inside a started stream, moderation and credit errors."""

from __future__ import annotations

from typing import Any

import pytest
from portway_openrouter import OpenRouterConfig, OpenRouterProvider
from portway_openrouter.testing import OpenRouterAPI

from portway.errors import ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

KEY = "sk-or-v1-test-secret-0123456789"
BASE = "/api/v1"


class QuirklessProvider(OpenAICompatibleProvider):
    """OpenRouter's URL and key with OpenAI's rules: what the adapter would do without its quirks."""

    type = "openrouter-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = OpenRouterProvider, **config: Any) -> Any:
    settings = OpenRouterConfig(type=cls.type, api_key=KEY, base_url=upstream.url + BASE, **config)
    return cls("openrouter", settings)


def serve(upstream: FakeUpstream, *turns: Any) -> OpenRouterAPI:
    return OpenRouterAPI(list(turns) or [say("Hi.")], api_key=KEY, chat_path=BASE + "/chat/completions",
                         embeddings_path=BASE + "/embeddings").install(upstream)


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def stream(provider: Any, request: dict[str, Any]) -> tuple[list[dict[str, Any]], ProviderError | None]:
    async def collect(p: Any) -> tuple[list[dict[str, Any]], ProviderError | None]:
        chunks: list[dict[str, Any]] = []
        try:
            async for chunk in p.chat_stream({**request, "stream": True}, None):
                chunks.append(chunk)
        except ProviderError as error:
            return chunks, error
        return chunks, None

    return run_provider(provider, collect)


BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-from-env-987654")
    provider = OpenRouterProvider("openrouter", OpenRouterConfig(type="openrouter"))
    assert provider.base_url == "https://openrouter.ai/api/v1"
    assert provider.auth_headers() == {"authorization": "Bearer sk-or-from-env-987654"}
    assert provider.default_headers() == {}
    with pytest.raises(Exception, match="site_ur"):
        OpenRouterConfig.model_validate({"type": "openrouter", "site_ur": "typo"})


def test_attribution_headers(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    chat(adapter(fake_upstream, site_url="https://acme.example", app_name="Acme Chat"), BODY)
    headers = fake_upstream.last.headers
    assert (headers["http-referer"], headers["x-title"]) == ("https://acme.example", "Acme Chat")
    assert headers["authorization"] == f"Bearer {KEY}" and fake_upstream.last.path == BASE + "/chat/completions"


def test_reasoning_and_its_details(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Yes.", reasoning="Think."), say("Yes.", reasoning="Think."))
    message = chat(adapter(fake_upstream), BODY)["choices"][0]["message"]
    assert message["reasoning_content"] == "Think." and "reasoning" not in message
    assert message["reasoning_details"] == [{"type": "reasoning.text", "text": "Think.", "index": 0}]
    chunks, error = stream(adapter(fake_upstream), BODY)  # the fake's stream opens with a comment line
    assert error is None
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]) == "Think."


def test_an_error_inside_a_started_stream(fake_upstream: FakeUpstream) -> None:
    fake_upstream.answer_all(OpenRouterAPI.failing_stream("Hel", 502, "Provider disconnected"))
    chunks, error = stream(adapter(fake_upstream), BODY)
    assert [c["choices"][0]["delta"].get("content") for c in chunks] == ["Hel"]
    assert error is not None and (error.kind, error.status) == ("server_error", 502)
    assert "Provider disconnected" in error.message
    chunks, error = stream(adapter(fake_upstream, QuirklessProvider), BODY)
    assert error is None and chunks[-1]["choices"][0]["finish_reason"] == "error"  # what a client would get


@pytest.mark.parametrize(("code", "kind"), [(429, "rate_limit"), ("rate_limit_exceeded", "rate_limit"),
                                           (408, "timeout")])
def test_the_reported_code_is_classified(fake_upstream: FakeUpstream, code: int | str, kind: str) -> None:
    fake_upstream.answer_all(OpenRouterAPI.failing_stream("", code, "Slow down"))
    _, error = stream(adapter(fake_upstream), BODY)
    assert error is not None and error.kind == kind


def test_an_error_in_a_whole_answer(fake_upstream: FakeUpstream) -> None:
    fake_upstream.answer_all(json_reply({"id": "gen-2", "object": "chat.completion", "model": "x",
                                         "error": {"code": 502, "message": "Upstream died"},
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                                                      "finish_reason": "error"}]}))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), BODY)
    assert (caught.value.kind, caught.value.status) == ("server_error", 502)


def test_moderation_is_a_content_filter(fake_upstream: FakeUpstream) -> None:
    fake_upstream.answer_all(OpenRouterAPI.moderation_error(["violence"], "how to ..."))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), BODY)
    assert (caught.value.kind, caught.value.status) == ("content_filter", 403)
    assert "flagged by moderation" in caught.value.message


def test_credits_and_limits(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(402, f"Insufficient credits for {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), BODY)
    assert caught.value.kind == "billing" and KEY not in caught.value.message
    fake_upstream.answer_all(api.error(503, "No available model provider that meets your routing requirements"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), BODY)
    assert caught.value.kind == "overloaded" and "routing requirements" in caught.value.message


def test_embeddings(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    answer = run_provider(adapter(fake_upstream), lambda p: p.embeddings(
        {"model": "openai/text-embedding-3-small", "input": ["a"]}, None))
    assert len(answer["data"]) == 1 and fake_upstream.last.path == BASE + "/embeddings"

"""The DeepInfra adapter against the DeepInfra fake (``portway_deepinfra.testing``)
over a real socket: the request it sends, what it refuses, FastAPI's error
bodies read, and a missing token classified."""

from __future__ import annotations

from typing import Any

import pytest
from portway_deepinfra import DeepInfraProvider
from portway_deepinfra.testing import DeepInfraAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, json_reply, run_provider
from portway.testing.script import say

KEY = "deepinfra-test-secret-0123456789"
BASE = "/v1/openai"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


class QuirklessProvider(OpenAICompatibleProvider):
    """DeepInfra's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "deepinfra-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = DeepInfraProvider,
            key: str | None = KEY) -> Any:
    return cls("deepinfra", ProviderConfig(type=cls.type, api_key=key, base_url=upstream.url + BASE))


def serve(upstream: FakeUpstream, *turns: Any) -> DeepInfraAPI:
    return DeepInfraAPI(list(turns) or [say("Hi.")], api_key=KEY, chat_path=BASE + "/chat/completions",
                        embeddings_path=BASE + "/embeddings").install(upstream)


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "deepseek-ai/DeepSeek-V3.1", "messages": [{"role": "user", "content": "Hello"}], **extra}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPINFRA_TOKEN", "deepinfra-from-env-987654")
    provider = DeepInfraProvider("deepinfra", ProviderConfig(type="deepinfra"))
    assert provider.base_url == "https://api.deepinfra.com/v1/openai"
    assert provider.auth_headers() == {"authorization": "Bearer deepinfra-from-env-987654"}


def test_the_request_as_deepinfra_reads_it(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    chat(adapter(fake_upstream), body(messages=messages, max_completion_tokens=40, parallel_tool_calls=True,
                                      tools=TOOLS, tool_choice="required", min_p=0.1))
    sent = fake_upstream.last.json()
    assert fake_upstream.last.path == BASE + "/chat/completions"
    assert fake_upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert sent["messages"][0]["role"] == "system"
    assert sent["max_tokens"] == 40 and "max_completion_tokens" not in sent and "parallel_tool_calls" not in sent
    assert (sent["tool_choice"], sent["min_p"]) == ("required", 0.1)
    assert not api.refusals


def test_deepinfra_has_no_developer_role(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, QuirklessProvider), body(messages=[{"role": "developer", "content": "x"},
                                                                       {"role": "user", "content": "y"}]))
    assert caught.value.status == 422 and "unknown role 'developer'" in caught.value.message


NAMED = {"type": "function", "function": {"name": "get_weather"}}


def test_a_named_tool_choice_is_refused_before_sending(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(tools=TOOLS, tool_choice=NAMED))
    assert (caught.value.status, caught.value.param) == (400, "tool_choice")
    assert not fake_upstream.requests
    with pytest.raises(ProviderError, match="tool_choice"):
        chat(adapter(fake_upstream, QuirklessProvider), body(tools=TOOLS, tool_choice=NAMED))


@pytest.mark.parametrize(("key", "value"), [("logit_bias", {"1": 2}), ("top_logprobs", 3)])
def test_refused_before_sending(fake_upstream: FakeUpstream, key: str, value: Any) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(**{key: value}))
    assert caught.value.param == key and not fake_upstream.requests


def test_a_missing_token_is_an_authentication_error(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, key="deepinfra-wrong-token-000000"), body())
    assert (caught.value.kind, caught.value.status) == ("authentication", 401)
    assert "Not authenticated" in caught.value.message


@pytest.mark.parametrize(("answer", "status", "said"), [
    ({"detail": "Model is not available"}, 404, "Model is not available"),
    ({"detail": {"error": "Rate limited"}}, 429, "Rate limited"),
    ({"detail": [{"loc": ["body", "temperature"], "msg": "Input should be less than or equal to 2",
                  "type": "less_than_equal"}]}, 422, "body.temperature: Input should be less than or equal to 2"),
    ({"error": {"message": "Overloaded", "type": "server_error"}}, 503, "Overloaded"),
])
def test_error_bodies_are_read(fake_upstream: FakeUpstream, answer: dict[str, Any], status: int, said: str) -> None:
    fake_upstream.answer_all(json_reply(answer, status))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert caught.value.status == status and caught.value.message.endswith(f": {said}")


def test_reasoning_content_and_embeddings(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Yes.", reasoning="Because."))
    answer = chat(adapter(fake_upstream), body(model="deepseek-ai/DeepSeek-R1"))
    assert answer["choices"][0]["message"]["reasoning_content"] == "Because."
    vectors = run_provider(adapter(fake_upstream), lambda p: p.embeddings({"model": "BAAI/bge-m3", "input": "x"}, None))
    assert len(vectors["data"]) == 1 and fake_upstream.last.path == BASE + "/embeddings"


def test_capabilities(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(model="deepseek-ai/DeepSeek-R1", tools=TOOLS))
    assert caught.value.param == "tools" and not fake_upstream.requests

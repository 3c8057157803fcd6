"""The DeepSeek adapter against the DeepSeek fake (``portway_deepseek.testing``)
over a real socket: the request it sends, what it refuses before sending (in
thinking mode too), reasoning both ways, and errors."""

from __future__ import annotations

from typing import Any

import pytest
from portway_deepseek import DeepSeekProvider
from portway_deepseek.testing import DeepSeekAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import say

KEY = "sk-deepseek-test-0123456789"
CHAT = "/chat/completions"


class QuirklessProvider(OpenAICompatibleProvider):
    """DeepSeek's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "deepseek-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = DeepSeekProvider) -> Any:
    return cls("deepseek", ProviderConfig(type=cls.type, api_key=KEY, base_url=upstream.url))


def serve(upstream: FakeUpstream, *turns: Any) -> DeepSeekAPI:
    return DeepSeekAPI(list(turns) or [say("Hi.")], api_key=KEY, chat_path=CHAT).install(upstream)


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def body(model: str = "deepseek-chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello"}], **extra}


def refusal(provider: Any, request: dict[str, Any]) -> PortwayError:
    with pytest.raises(PortwayError) as caught:
        chat(provider, request)
    return caught.value


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-from-env-987654")
    provider = DeepSeekProvider("deepseek", ProviderConfig(type="deepseek"))
    assert provider.base_url == "https://api.deepseek.com"
    assert provider.auth_headers() == {"authorization": "Bearer sk-from-env-987654"}


def test_the_request_as_deepseek_reads_it(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    chat(adapter(fake_upstream), body(messages=messages, max_completion_tokens=50, seed=3, user="u-1", n=1,
                                      parallel_tool_calls=False, response_format={"type": "json_object"}))
    sent = fake_upstream.last.json()
    assert (fake_upstream.last.path, fake_upstream.last.headers["authorization"]) == (CHAT, f"Bearer {KEY}")
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 50 and "max_completion_tokens" not in sent
    assert not {"seed", "user", "n", "parallel_tool_calls"} & set(sent)
    assert not api.refusals


def test_deepseek_has_no_developer_role(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError, match="unknown role 'developer'"):
        chat(adapter(fake_upstream, QuirklessProvider),
             body(messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]))


def test_json_schema_is_refused_before_sending(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    error = refusal(adapter(fake_upstream), body(response_format=schema))
    assert (error.status, error.param) == (400, "response_format") and "json_object" in error.message
    assert not fake_upstream.requests
    with pytest.raises(ProviderError, match="json_schema"):
        chat(adapter(fake_upstream, QuirklessProvider), body(response_format=schema))


@pytest.mark.parametrize(("key", "value"), [("n", 2), ("logit_bias", {"1": -5})])
def test_refused_before_sending(fake_upstream: FakeUpstream, key: str, value: Any) -> None:
    serve(fake_upstream)
    assert refusal(adapter(fake_upstream), body(**{key: value})).param == key
    assert not fake_upstream.requests


@pytest.mark.parametrize("request_body", [
    body("deepseek-reasoner", logprobs=True),
    body("deepseek-chat", thinking={"type": "enabled"}, top_logprobs=2),
    body("deepseek-v4-pro", logprobs=True),
])
def test_no_logprobs_in_thinking_mode(fake_upstream: FakeUpstream, request_body: dict[str, Any]) -> None:
    serve(fake_upstream)
    error = refusal(adapter(fake_upstream), request_body)
    assert error.status == 400 and error.param in ("logprobs", "top_logprobs")
    assert not fake_upstream.requests
    with pytest.raises(ProviderError, match="not supported in the thinking mode"):
        chat(adapter(fake_upstream, QuirklessProvider), request_body)


def test_logprobs_without_thinking(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream, say("Hi."), say("Hi."))
    chat(adapter(fake_upstream), body("deepseek-chat", logprobs=True, top_logprobs=2))
    chat(adapter(fake_upstream), body("deepseek-v4-flash", thinking={"type": "disabled"}, logprobs=True))
    assert fake_upstream.last.json()["logprobs"] is True and not api.refusals


TOOL_TURN = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "reasoning_content": "I should look it up.",
     "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
]


def test_a_tool_turn_keeps_its_reasoning(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream, say("Sunny."))
    chat(adapter(fake_upstream), body("deepseek-reasoner", messages=TOOL_TURN))
    assert not api.refusals
    assert fake_upstream.last.json()["messages"][1]["reasoning_content"] == "I should look it up."
    without = [TOOL_TURN[0], {k: v for k, v in TOOL_TURN[1].items() if k != "reasoning_content"}, TOOL_TURN[2]]
    with pytest.raises(ProviderError, match="must be passed back"):
        chat(adapter(fake_upstream), body("deepseek-reasoner", messages=without))


def test_reasoning_content_whole_and_streamed(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("2.", reasoning="One plus one."), say("2.", reasoning="One plus one."))
    answer = chat(adapter(fake_upstream), body("deepseek-reasoner"))
    assert answer["choices"][0]["message"]["reasoning_content"] == "One plus one."
    chunks = run_provider(adapter(fake_upstream), lambda p: collect_stream(p, body("deepseek-reasoner", stream=True)))
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]) \
        == "One plus one."


def test_insufficient_balance_is_billing(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(402, "Insufficient Balance"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert (caught.value.status, caught.value.kind) == (402, "billing")
    assert "Insufficient Balance" in caught.value.message


def test_no_embeddings_and_no_images(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError, match="does not support embeddings"):
        run_provider(adapter(fake_upstream), lambda p: p.embeddings({"model": "x", "input": "hi"}, None))
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    assert refusal(adapter(fake_upstream), body(messages=[image])).param == "messages[0].content[0]"
    assert not fake_upstream.requests

"""The Groq adapter against the Groq fake (``portway_groq.testing``) over a
real socket: what it sends, what it refuses before sending, how it reads
Groq's reasoning and errors.  Where the adapter changes a request, a test
also sends the same request without Groq's quirks and sees the fake refuse
it, so the rule under test is one Groq really enforces."""

from __future__ import annotations

from typing import Any

import pytest
from portway_groq import GroqProvider
from portway_groq.testing import GroqAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import say

KEY = "gsk_test-secret-0123456789"
CHAT = "/openai/v1/chat/completions"
MODEL = "llama-3.3-70b-versatile"


class QuirklessProvider(OpenAICompatibleProvider):
    """Groq's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "groq-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = GroqProvider) -> Any:
    return cls("groq", ProviderConfig(type=cls.type, api_key=KEY, base_url=upstream.url + "/openai/v1"))


def serve(upstream: FakeUpstream, *turns: Any) -> GroqAPI:
    return GroqAPI(list(turns) or [say("Hi.")], api_key=KEY, chat_path=CHAT).install(upstream)


def chat(provider: Any, body: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(body, None))


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages) or [{"role": "user", "content": "Hello"}], **extra}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_from-env-987654")
    provider = GroqProvider("groq", ProviderConfig(type="groq"))
    assert provider.base_url == "https://api.groq.com/openai/v1"
    assert provider.auth_headers() == {"authorization": "Bearer gsk_from-env-987654"}
    assert "llama-3.3-70b-versatile" in provider.models()


def test_url_and_bearer_key(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    assert chat(adapter(fake_upstream), body())["choices"][0]["message"]["content"] == "Hi."
    assert fake_upstream.last.path == CHAT
    assert fake_upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert not api.refusals


HISTORY = body(
    {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
    {"role": "user", "name": "ada", "content": "Hi"},
    {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet back."},
    {"role": "user", "content": "And?"},
)


def test_history_as_groq_takes_it(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    chat(adapter(fake_upstream), HISTORY)
    assert not api.refusals
    assert fake_upstream.last.json()["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "And?"},
    ]


def test_keys_groq_does_not_know_are_not_sent(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    echoed = {"role": "assistant", "content": "Hello.", "refusal": None, "annotations": [], "audio": None}
    chat(adapter(fake_upstream), body({"role": "user", "content": "Hi"}, echoed, {"role": "user", "content": "And?"}))
    assert not api.refusals
    assert fake_upstream.last.json()["messages"][1] == {"role": "assistant", "content": "Hello."}
    with pytest.raises(ProviderError, match="property 'annotations' is unsupported"):
        chat(adapter(fake_upstream, QuirklessProvider), body(echoed, {"role": "user", "content": "And?"}))


@pytest.mark.parametrize(("message", "groq_says"), [
    ({"role": "user", "name": "ada", "content": "Hi"}, "property 'name' is unsupported"),
    ({"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, "value must be a string"),
])
def test_groq_refuses_what_the_adapter_changes(fake_upstream: FakeUpstream, message: dict[str, Any],
                                               groq_says: str) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, QuirklessProvider), body(message, {"role": "user", "content": "Go"}))
    assert caught.value.status == 400 and groq_says in caught.value.message


def test_groq_refuses_reasoning_sent_back(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError, match="property 'reasoning_content' is unsupported"):
        chat(adapter(fake_upstream, QuirklessProvider), body(*HISTORY["messages"][2:]))


@pytest.mark.parametrize("key", ["logprobs", "logit_bias", "top_logprobs"])
def test_what_groq_cannot_return_is_refused_before_sending(fake_upstream: FakeUpstream, key: str) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(**{key: {"50256": -100} if key == "logit_bias" else 3}))
    assert (caught.value.status, caught.value.param) == (400, key)
    assert not fake_upstream.requests


@pytest.mark.parametrize("key", ["logprobs", "logit_bias", "top_logprobs"])
def test_keys_that_ask_for_nothing_are_not_sent(fake_upstream: FakeUpstream, key: str) -> None:
    api = serve(fake_upstream)
    chat(adapter(fake_upstream), body(**{key: None if key != "logprobs" else False}))
    assert not api.refusals and key not in fake_upstream.last.json()


def test_n(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("One."))
    chat(adapter(fake_upstream), body(n=1))
    assert "n" not in fake_upstream.last.json()
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(n=2))
    assert caught.value.param == "n"


def test_reasoning_is_mapped_to_reasoning_content(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("42.", reasoning="Six times seven."), say("42.", reasoning="Six times seven."))
    message = chat(adapter(fake_upstream), body(model="openai/gpt-oss-120b"))["choices"][0]["message"]
    assert message["reasoning_content"] == "Six times seven." and "reasoning" not in message
    chunks = run_provider(adapter(fake_upstream), lambda p: collect_stream(p, body(model="openai/gpt-oss-120b",
                                                                                  stream=True)))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Six times seven."
    assert not any("reasoning" in d for d in deltas)


def test_errors_keep_groq_message_and_status(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(429, f"Rate limit reached for key {KEY}", retry_after="7"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    error = caught.value
    assert (error.status, error.kind, error.retry_after) == (429, "rate_limit", "7")
    assert "Rate limit reached" in error.message and KEY not in error.message


def test_a_wrong_key_is_an_authentication_error(fake_upstream: FakeUpstream) -> None:
    GroqAPI([say("Hi.")], api_key="gsk_the-right-one-0000", chat_path=CHAT).install(fake_upstream)
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert (caught.value.status, caught.value.kind) == (401, "authentication")


@pytest.mark.parametrize(("model", "extra", "param"), [
    ("llama-3.3-70b-versatile", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]},
     "messages[0].content[1]"),
    ("meta-llama/llama-guard-4-12b", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
     "tools"),
])
def test_capabilities(fake_upstream: FakeUpstream, model: str, extra: dict[str, Any], param: str) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), {**body(model=model), **extra})
    assert (caught.value.status, caught.value.param) == (400, param)
    assert not fake_upstream.requests


def test_no_embeddings(fake_upstream: FakeUpstream) -> None:
    with pytest.raises(PortwayError, match="does not support embeddings") as caught:
        run_provider(adapter(fake_upstream), lambda p: p.embeddings({"model": "x", "input": "hi"}, None))
    assert caught.value.status == 400

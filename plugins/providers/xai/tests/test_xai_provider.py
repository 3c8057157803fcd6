"""The xAI adapter against the Grok fake (``portway_xai.testing``) over a real
socket: what reasoning models are not sent or refuse, reasoning content,
and xAI's error shape with its 400 for a wrong key."""

from __future__ import annotations

from typing import Any

import pytest
from portway_xai import XAIProvider
from portway_xai.testing import XAIAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import say

KEY = "xai-test-secret-0123456789"


class QuirklessProvider(OpenAICompatibleProvider):
    """xAI's URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "xai-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = XAIProvider, key: str = KEY) -> Any:
    return cls("xai", ProviderConfig(type=cls.type, api_key=key, base_url=upstream.url + "/v1"))


def serve(upstream: FakeUpstream, *turns: Any) -> XAIAPI:
    return XAIAPI(list(turns) or [say("Hi.")] * 3, api_key=KEY).install(upstream)


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello"}], **extra}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XAI_API_KEY", "xai-from-env-987654")
    provider = XAIProvider("xai", ProviderConfig(type="xai"))
    assert provider.base_url == "https://api.x.ai/v1"
    assert provider.auth_headers() == {"authorization": "Bearer xai-from-env-987654"}


def test_reasoning_models_are_not_sent_what_they_refuse(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    steering = {"presence_penalty": 0.5, "frequency_penalty": 0.5, "stop": None, "reasoning_effort": "high"}
    chat(adapter(fake_upstream), body("grok-4", **steering))
    assert not api.refusals and not set(steering) & set(fake_upstream.last.json())
    with pytest.raises(ProviderError, match="does not support parameter presencePenalty"):
        chat(adapter(fake_upstream, QuirklessProvider), body("grok-4", presence_penalty=0.5))


def test_stop_is_refused_for_reasoning_models(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body("grok-code-fast-1", stop=["END"]))
    assert (caught.value.status, caught.value.param) == (400, "stop")
    assert not fake_upstream.requests


def test_other_models_get_everything(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    sent = body("grok-4-fast-non-reasoning", presence_penalty=0.5, frequency_penalty=0.1, stop=["END"], n=2,
                max_completion_tokens=99)
    chat(adapter(fake_upstream), sent)
    assert fake_upstream.last.json() == sent


def test_reasoning_effort_only_for_grok_3_mini(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    chat(adapter(fake_upstream), body("grok-3-mini", reasoning_effort="high"))
    assert fake_upstream.last.json()["reasoning_effort"] == "high"
    chat(adapter(fake_upstream), body("grok-3", reasoning_effort="high"))
    assert "reasoning_effort" not in fake_upstream.last.json()
    with pytest.raises(ProviderError, match="reasoningEffort"):
        chat(adapter(fake_upstream, QuirklessProvider), body("grok-4", reasoning_effort="high"))


def test_reasoning_content(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("4.", reasoning="2+2."), say("4.", reasoning="2+2."))
    assert chat(adapter(fake_upstream), body("grok-3-mini"))["choices"][0]["message"]["reasoning_content"] == "2+2."
    chunks = run_provider(adapter(fake_upstream), lambda p: collect_stream(p, body("grok-3-mini", stream=True)))
    assert "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]) == "2+2."


def test_a_wrong_key_is_an_authentication_error(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    wrong = "xai-wrong-key-5555555555"
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, key=wrong), body("grok-3"))
    assert (caught.value.kind, caught.value.status) == ("authentication", 401)
    assert "Incorrect API key provided" in caught.value.message and wrong not in caught.value.message
    with pytest.raises(ProviderError) as plain:
        chat(adapter(fake_upstream, QuirklessProvider, key=wrong), body("grok-3"))
    assert (plain.value.kind, plain.value.status) == ("bad_request", 400)  # what xAI's status alone says


def test_a_too_long_prompt_is_a_context_length_error(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(400, "This model's maximum prompt length is 131072 but the request contains "
                                            "179111 tokens."))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body("grok-3"))
    assert (caught.value.kind, caught.value.status) == ("context_length", 400)
    assert "maximum prompt length is 131072" in caught.value.message


def test_other_errors_keep_xai_message(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(429, "Too many requests", retry_after="3"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body("grok-3"))
    assert (caught.value.kind, caught.value.retry_after) == ("rate_limit", "3")
    assert "Too many requests" in caught.value.message


def test_capabilities(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body("grok-3-mini", messages=[image]))
    assert caught.value.param == "messages[0].content[0]" and not fake_upstream.requests

"""The Fireworks AI adapter against the Fireworks fake (``portway_fireworks.testing``)
over a real socket: the request it sends, what it refuses, the stream's usage
moved to a chunk of its own, reasoning and errors."""

from __future__ import annotations

from typing import Any

import pytest
from portway_fireworks import FireworksProvider
from portway_fireworks.testing import FireworksAPI

from portway.config import ProviderConfig
from portway.errors import PortwayError, ProviderError
from portway.formats.openai import OpenAICompatibleProvider
from portway.testing import FakeUpstream, collect_stream, run_provider
from portway.testing.script import say

KEY = "fw_test-secret-0123456789"
MODEL = "accounts/fireworks/models/deepseek-v3p1"
BASE = "/inference/v1"


class QuirklessProvider(OpenAICompatibleProvider):
    """Fireworks' URL and key with OpenAI's rules: what the adapter would send without its quirks."""

    type = "fireworks-quirkless"


def adapter(upstream: FakeUpstream, cls: type[OpenAICompatibleProvider] = FireworksProvider) -> Any:
    return cls("fireworks", ProviderConfig(type=cls.type, api_key=KEY, base_url=upstream.url + BASE))


def serve(upstream: FakeUpstream, *turns: Any) -> FireworksAPI:
    return FireworksAPI(list(turns) or [say("Hi.")], api_key=KEY, chat_path=BASE + "/chat/completions",
                        embeddings_path=BASE + "/embeddings").install(upstream)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], **extra}


def chat(provider: Any, request: dict[str, Any]) -> dict[str, Any]:
    return run_provider(provider, lambda p: p.chat(request, None))


def stream(provider: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    return run_provider(provider, lambda p: collect_stream(p, {**request, "stream": True}))


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw_from-env-987654")
    provider = FireworksProvider("fireworks", ProviderConfig(type="fireworks"))
    assert provider.base_url == "https://api.fireworks.ai/inference/v1"
    assert provider.auth_headers() == {"authorization": "Bearer fw_from-env-987654"}


def test_request_path_key_and_context_behaviour(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Hi."), say("Hi."))
    chat(adapter(fake_upstream), body(max_tokens=100, top_k=40))
    sent = fake_upstream.last.json()
    assert fake_upstream.last.path == BASE + "/chat/completions"
    assert fake_upstream.last.headers["authorization"] == f"Bearer {KEY}"
    assert sent["context_length_exceeded_behavior"] == "error"  # a too-long prompt is a 400, not a cut answer
    assert (sent["max_tokens"], sent["top_k"]) == (100, 40)
    chat(adapter(fake_upstream), body(context_length_exceeded_behavior="truncate"))
    assert fake_upstream.last.json()["context_length_exceeded_behavior"] == "truncate"  # the client's choice


def test_stream_usage_becomes_a_chunk_of_its_own(fake_upstream: FakeUpstream, gateway_server: Any) -> None:
    serve(fake_upstream, say("Hello there.", input_tokens=9, output_tokens=3))
    client = gateway_server({"providers": {"fw": {"type": "fireworks", "api_key": KEY,
                                                  "base_url": fake_upstream.url + BASE}}}).openai_client()
    chunks = list(client.chat.completions.create(model="fw/accounts/fireworks/models/llama-v3p1-8b-instruct",
                                                 messages=[{"role": "user", "content": "hi"}], stream=True,
                                                 stream_options={"include_usage": True}))
    # Fireworks sent the usage on its finish chunk; the client gets it as OpenAI ends a stream.
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].usage is None


@pytest.mark.parametrize(("key", "value"), [("logprobs", True), ("top_logprobs", 3), ("logit_bias", {"1": -5})])
def test_refused_before_sending(fake_upstream: FakeUpstream, key: str, value: Any) -> None:
    serve(fake_upstream)
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(**{key: value}))
    assert (caught.value.status, caught.value.param) == (400, key)
    assert not fake_upstream.requests


def test_fireworks_refuses_logit_bias(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream, QuirklessProvider), body(logit_bias={"1": -5}))
    assert caught.value.status == 400 and "logit_bias" in caught.value.message


def test_reasoning_content(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream, say("Yes.", reasoning="Check it."), say("Yes.", reasoning="Check it."))
    model = "accounts/fireworks/models/deepseek-r1-0528"
    assert chat(adapter(fake_upstream), body(model=model))["choices"][0]["message"]["reasoning_content"] == "Check it."
    deltas = [c["choices"][0]["delta"] for c in stream(adapter(fake_upstream), body(model=model)) if c["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Check it."


def test_embeddings(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    answer = run_provider(adapter(fake_upstream),
                          lambda p: p.embeddings({"model": "nomic-ai/nomic-embed-text-v1.5", "input": "hi"}, None))
    assert len(answer["data"]) == 1 and fake_upstream.last.path == BASE + "/embeddings"


def test_errors(fake_upstream: FakeUpstream) -> None:
    api = serve(fake_upstream)
    fake_upstream.answer_all(api.error(400, f"prompt too long for key {KEY}"))
    with pytest.raises(ProviderError) as caught:
        chat(adapter(fake_upstream), body())
    assert (caught.value.status, caught.value.kind) == (400, "bad_request")
    assert "prompt too long" in caught.value.message and KEY not in caught.value.message


def test_capabilities(fake_upstream: FakeUpstream) -> None:
    serve(fake_upstream)
    image = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    with pytest.raises(PortwayError) as caught:
        chat(adapter(fake_upstream), body(messages=[image]))
    assert (caught.value.status, caught.value.param) == (400, "messages[0].content[0]")
    assert not fake_upstream.requests

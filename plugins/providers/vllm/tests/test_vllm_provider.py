"""The vLLM adapter against the fake vLLM server: no key by default, the
``reasoning`` field both ways, vLLM's error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from portway_vllm import VLLMProvider
from portway_vllm.testing import VLLMAPI

from portway.config import ProviderConfig
from portway.errors import ProviderError
from portway.testing import FakeUpstream, collect_stream, json_reply, run_provider
from portway.testing.script import say

KEY = "vllm-test-key-0123456789"
THOUGHT = "Paris is the capital."
HELLO = [{"role": "user", "content": "Capital of France?"}]


def provider(upstream: FakeUpstream, **config: Any) -> VLLMProvider:
    return VLLMProvider("local", ProviderConfig.model_validate({"type": "vllm", "base_url": upstream.url + "/v1",
                                                                **config}))


def test_defaults_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = VLLMProvider("vllm", ProviderConfig(type="vllm"))
    assert adapter.base_url == "http://127.0.0.1:8000/v1"
    assert adapter.env_key is None and adapter.auth_headers() == {}


def test_no_key_sends_no_authorization(fake_upstream: FakeUpstream) -> None:
    api = VLLMAPI([say("Paris.")]).install(fake_upstream)
    answer = run_provider(provider(fake_upstream), lambda p: p.chat({"model": "m", "messages": HELLO}, None))
    assert answer["choices"][0]["message"]["content"] == "Paris."
    assert "authorization" not in api.calls[0].request.headers


def test_api_key_is_sent_as_bearer(fake_upstream: FakeUpstream) -> None:
    api = VLLMAPI([say("Paris.")], api_key=KEY).install(fake_upstream)
    run_provider(provider(fake_upstream, api_key=KEY), lambda p: p.chat({"model": "m", "messages": HELLO}, None))
    assert api.calls[0].request.headers["authorization"] == f"Bearer {KEY}"


def test_reasoning_field_is_mapped_whole_and_streamed(fake_upstream: FakeUpstream) -> None:
    VLLMAPI([say("Paris.", reasoning=THOUGHT)] * 2).install(fake_upstream)
    adapter = provider(fake_upstream)
    whole = run_provider(adapter, lambda p: p.chat({"model": "m", "messages": HELLO}, None))
    message = whole["choices"][0]["message"]
    assert message["reasoning_content"] == THOUGHT and "reasoning" not in message
    chunks = run_provider(provider(fake_upstream), lambda p: collect_stream(p, {"model": "m", "messages": HELLO,
                                                                                "stream": True}))
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == THOUGHT
    assert not any("reasoning" in d for d in deltas)


def test_reasoning_in_history_goes_back_as_reasoning(fake_upstream: FakeUpstream) -> None:
    api = VLLMAPI([say("Yes.")]).install(fake_upstream)
    history = [*HELLO, {"role": "assistant", "content": "Paris.", "reasoning_content": THOUGHT},
               {"role": "user", "content": "Sure?"}]
    body = {"model": "m", "messages": history}
    run_provider(provider(fake_upstream), lambda p: p.chat(body, None))
    sent = api.calls[0].body["messages"][1]
    assert sent == {"role": "assistant", "content": "Paris.", "reasoning": THOUGHT}
    assert "reasoning_content" in body["messages"][1]  # the caller's body is left as it was


@pytest.mark.parametrize(("status", "payload", "kind"), [
    (400, {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "param": None, "code": 400}},
     "bad_request"),
    (404, {"object": "error", "message": "The model `x` does not exist.", "type": "NotFoundError", "param": None,
           "code": 404}, "not_found"),  # vLLM before 0.10: the error object at the top level
    (401, {"error": "Unauthorized"}, "authentication"),
])
def test_error_bodies(fake_upstream: FakeUpstream, status: int, payload: dict[str, Any], kind: str) -> None:
    fake_upstream.add("/v1/chat/completions", json_reply(payload, status))
    with pytest.raises(ProviderError) as info:
        run_provider(provider(fake_upstream, api_key=KEY), lambda p: p.chat({"model": "m", "messages": HELLO}, None))
    error = info.value
    assert (error.status, error.kind) == (status, kind)
    text = payload["error"] if isinstance(payload.get("error"), str) else (payload.get("error") or payload)["message"]
    assert text in error.message and KEY not in error.message

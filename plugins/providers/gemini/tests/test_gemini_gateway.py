"""The gemini provider behind a real gateway, with the official SDKs as clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from portway.testing import FakeUpstream
from portway.testing.script import call, say
from portway_gemini.testing import GeminiAPI, error_body

KEY = "AIzaSy-gateway-test-0123"
MODEL = "gemini-2.5-flash"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def gateway(gateway_server: Callable[..., Any], fake_upstream: FakeUpstream) -> Any:
    return gateway_server({"providers": {"gem": {"type": "gemini", "api_key": KEY, "base_url": fake_upstream.url}}})


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_sdk_tool_loop(gateway: Any, fake_upstream: FakeUpstream, streamed: bool) -> None:
    api = GeminiAPI([call("get_weather", {"city": "Paris"}), say("Sunny in Paris.")], api_key=KEY,
                    models=[MODEL]).install(fake_upstream)
    client = gateway.openai_client()
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if streamed:
        with client.chat.completions.stream(model=f"gem/{MODEL}", messages=messages, tools=TOOLS) as stream:
            final = stream.get_final_completion()
        assistant = final.choices[0].message.model_dump(exclude_none=True)
        # The SDK's accumulator keeps unknown delta keys on the message: the signature included.
        assert final.choices[0].message.model_extra.get("thinking_blocks"), final.choices[0].message
        assistant["thinking_blocks"] = final.choices[0].message.model_extra["thinking_blocks"]
    else:
        final = client.chat.completions.create(model=f"gem/{MODEL}", messages=messages, tools=TOOLS)
        assistant = final.choices[0].message.model_dump(exclude_none=True)
    assert final.choices[0].finish_reason == "tool_calls"
    [tool_call] = final.choices[0].message.tool_calls
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    messages += [assistant, {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"}]
    answer = client.chat.completions.create(model=f"gem/{MODEL}", messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "Sunny in Paris."
    assert not api.refusals, api.refusals  # the signature went back on the call
    assert [r.text for r in api.calls[1].tool_results] == ["sunny"]


def test_anthropic_sdk_tool_loop_keeps_the_signature(gateway: Any, fake_upstream: FakeUpstream) -> None:
    api = GeminiAPI([call("get_weather", {"city": "Paris"}), say("Sunny.")], api_key=KEY,
                    models=[MODEL]).install(fake_upstream)
    client = gateway.anthropic_client()
    tools = [{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with client.messages.stream(model=f"gem/{MODEL}", max_tokens=200, messages=messages, tools=tools,
                                extra_body={"top_k": 5}) as stream:
        first = stream.get_final_message()
    assert fake_upstream.requests[0].json()["generationConfig"] == {"maxOutputTokens": 200, "topK": 5}
    assert first.stop_reason == "tool_use"
    kinds = [block.type for block in first.content]
    assert kinds == ["thinking", "tool_use"], kinds
    tool_use = first.content[1]
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}]}]
    second = client.messages.create(model=f"gem/{MODEL}", max_tokens=200, messages=messages, tools=tools)
    assert second.content[0].text == "Sunny."
    assert not api.refusals, api.refusals


@pytest.mark.parametrize("streamed", [False, True])
def test_rate_limit_reaches_the_client_with_retry_after(gateway: Any, fake_upstream: FakeUpstream,
                                                        streamed: bool) -> None:
    api = GeminiAPI([], api_key=KEY, models=[MODEL]).install(fake_upstream)
    method = "streamGenerateContent" if streamed else "generateContent"
    fake_upstream.add(f"/v1beta/models/{MODEL}:{method}", api.error(429, "Quota exceeded for metric X.",
                                                                    retry_after="12.5"))
    with pytest.raises(openai.RateLimitError) as err:
        gateway.openai_client().chat.completions.create(model=f"gem/{MODEL}", stream=streamed,
                                                        messages=[{"role": "user", "content": "hi"}])
    assert err.value.response.headers["retry-after"] == "13"
    assert "Quota exceeded for metric X." in err.value.message and KEY not in err.value.message


def test_wrong_key_is_an_authentication_error_without_the_key(gateway: Any, fake_upstream: FakeUpstream) -> None:
    GeminiAPI([say("never")], api_key="another-key-entirely", models=[MODEL]).install(fake_upstream)
    with pytest.raises(openai.APIStatusError) as err:
        gateway.openai_client().chat.completions.create(model=f"gem/{MODEL}",
                                                        messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 400
    assert err.value.body["type"] == "authentication_error"
    assert "API key not valid" in err.value.message and KEY not in err.value.message


def test_client_disconnect_mid_stream_closes_the_upstream(gateway: Any, fake_upstream: FakeUpstream) -> None:
    words = [{"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": f"word{i} "}]}}]}
             for i in range(30)]
    fake_upstream.sse(f"/v1beta/models/{MODEL}:streamGenerateContent", words, delay=0.2, line_end="\r\n")
    received = []
    payload = {"model": f"gem/{MODEL}", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.Client(timeout=10) as http, http.stream("POST", gateway.base_url + "/chat/completions",
                                                       json=payload) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(line)
            if len(received) == 3:
                break
    assert upstream_disconnected(fake_upstream), "the gateway kept reading from Gemini after the client left"
    assert fake_upstream.streams_finished == 0


def upstream_disconnected(upstream: FakeUpstream) -> bool:
    return upstream.disconnected.wait(5)


def test_embeddings_with_the_sdk_default_base64(gateway: Any, fake_upstream: FakeUpstream) -> None:
    GeminiAPI([], api_key=KEY, models=["gemini-embedding-001"]).install(fake_upstream)
    out = gateway.openai_client().embeddings.create(model="gem/gemini-embedding-001", input=["a", "bb"])
    assert [item.embedding for item in out.data] == [pytest.approx([0.1, 0.2, 0.3, 0.4]),
                                                     pytest.approx([0.2, 0.3, 0.4, 0.5])]


def test_an_error_event_mid_stream_ends_the_stream_with_an_error(gateway: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(f"/v1beta/models/{MODEL}:streamGenerateContent", [
        {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}]},
        error_body(500, "An internal error has occurred.")], line_end="\r\n")
    stream = gateway.openai_client().chat.completions.create(
        model=f"gem/{MODEL}", stream=True, messages=[{"role": "user", "content": "hi"}])
    texts = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert "An internal error has occurred." in str(err.value.message)
    assert "Hel" in texts

"""The Chat Completions wire fake (:mod:`portway.testing.openai_chat`),
pinned with the official openai SDK talking to it directly: what it answers
is what the SDK reads, and what it refuses it refuses in OpenAI's shape."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import httpx
import openai
import pytest

from portway.testing import FakeUpstream
from portway.testing.openai_chat import OpenAIChatAPI, vector_of
from portway.testing.script import call, say

KEY = "sk-fake-openai-0123456789"
HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream() as fake:
        yield fake


def client_of(upstream: FakeUpstream, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.url + "/v1", api_key=key, max_retries=0)


def test_text_answers_streamed_and_not(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([say("Hello there.", input_tokens=7, output_tokens=3), say("Streamed text."),
                         say("Cut sho", truncated=True)], api_key=KEY).install(upstream)
    client = client_of(upstream)
    reply = client.chat.completions.create(model="gpt-x", messages=HI)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason, reply.model) == (
        "Hello there.", "stop", "gpt-x")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (7, 3, 10)

    chunks = list(client.chat.completions.create(model="gpt-x", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [
        "Streame", "d text."]  # in pieces: a client must join them
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])

    raw = httpx.post(upstream.url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                     json={"model": "gpt-x", "messages": HI, "stream": True})
    events = [line[6:] for line in raw.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(event) for event in events[:-1])  # none unless asked for
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"  # the truncated turn

    first, second, third = (api.seen(seen) for seen in api.calls)
    assert (first.model, first.stream, first.text_turns()) == ("gpt-x", False, [("user", "hi")])
    assert second.stream is True and third.stream is True


def test_a_tool_round_trip_through_the_sdks_stream_helper(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([call("get_weather", {"city": "Paris"}), say("Sunny in Paris.")], api_key=KEY)
    api.install(upstream)
    client = client_of(upstream)
    ask = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
    with client.chat.completions.stream(model="gpt-x", messages=ask, tools=[TOOL]) as stream:
        deltas = [e.arguments_delta for e in stream if e.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    [tool_call] = final.choices[0].message.tool_calls
    assert (tool_call.function.name, json.loads(tool_call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert tool_call.id.startswith("call_") and final.choices[0].finish_reason == "tool_calls"
    assert [piece for piece in deltas if piece] == ['{"city":', '"Paris"}']  # the arguments in two pieces

    history = [*ask, final.choices[0].message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": tool_call.id, "content": "24 degrees"}]
    reply = client.chat.completions.create(model="gpt-x", messages=history, tools=[TOOL])
    assert reply.choices[0].message.content == "Sunny in Paris."
    seen = api.seen(api.calls[1])
    assert (seen.system, seen.tool_names, seen.tool_calls, seen.tool_results) == (
        "Be brief.", ["get_weather"], [("get_weather", {"city": "Paris"})], [(tool_call.id, "24 degrees")])
    assert api.calls[1].last_tool_result.text == "24 degrees"


def test_what_it_refuses_in_openais_shape(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([say("ok")], api_key=KEY, refused_params=frozenset({"seed"})).install(upstream)
    client = client_of(upstream)

    def refused(**request: Any) -> tuple[int, dict[str, Any]]:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="gpt-x", **request)
        return info.value.status_code, info.value.response.json()["error"]

    status, error = refused(messages=[{"role": "tool", "tool_call_id": "call_nope", "content": "x"}])
    assert (status, error["message"], error["type"]) == (
        400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
             "'tool_calls'.", "invalid_request_error")
    unanswered = [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "and?"}]
    assert refused(messages=unanswered)[1]["message"].endswith(
        "The following tool_call_ids did not have response messages: call_1")
    status, error = refused(messages=HI, seed=1)
    assert (status, error["param"]) == (400, "seed") and "'seed'" in error["message"]
    with pytest.raises(openai.AuthenticationError):
        client_of(upstream, "sk-someone-else").chat.completions.create(model="gpt-x", messages=HI)
    no_key = httpx.post(upstream.url + "/v1/chat/completions", json={"model": "gpt-x", "messages": HI})
    assert no_key.status_code == 401 and no_key.json()["error"]["message"].startswith("You didn't provide an API key")
    assert client.chat.completions.create(model="gpt-x", messages=HI).choices[0].message.content == "ok"
    assert len(api.calls) == 1 and len(api.refusals) == 5


@pytest.mark.parametrize(("status", "exception"), [(400, openai.BadRequestError), (401, openai.AuthenticationError),
                                                   (404, openai.NotFoundError), (429, openai.RateLimitError),
                                                   (503, openai.InternalServerError)])
def test_its_errors_are_the_ones_the_sdk_raises(upstream: FakeUpstream, status: int, exception: type) -> None:
    api = OpenAIChatAPI([say("ok")], api_key=KEY).install(upstream)
    upstream.answer_all(api.error(status, "it went wrong", retry_after="3"))
    with pytest.raises(exception) as info:
        client_of(upstream).chat.completions.create(model="gpt-x", messages=HI)
    assert info.value.message.endswith("it went wrong")
    assert info.value.response.headers["retry-after"] == "3"


def test_embeddings_as_floats_and_as_base64(upstream: FakeUpstream) -> None:
    api = OpenAIChatAPI([], api_key=KEY).install(upstream)
    client = client_of(upstream)
    default = client.embeddings.create(model="text-embedding-x", input=["alpha", "beta"])  # base64, decoded by the SDK
    floats = client.embeddings.create(model="text-embedding-x", input="alpha", encoding_format="float")
    encoded = client.embeddings.create(model="text-embedding-x", input="alpha", encoding_format="base64")
    assert floats.data[0].embedding == vector_of("alpha") != vector_of("beta")
    for item, text in zip(default.data, ["alpha", "beta"], strict=True):
        assert item.embedding == pytest.approx(vector_of(text), rel=1e-6)
    raw = base64.b64decode(encoded.data[0].embedding)  # type: ignore[arg-type]
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(vector_of("alpha"), rel=1e-6)
    assert default.usage.prompt_tokens == 2
    assert [body["encoding_format"] for body in api.embedding_requests] == ["base64", "float", "base64"]

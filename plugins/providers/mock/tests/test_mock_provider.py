"""The mock provider: deterministic, network-free answers that exercise every
feature a client uses (text, tools, JSON mode, streams, errors, embeddings)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from portway.errors import ProviderError
from portway.formats.openai import StreamAssembler
from portway_mock import MockConfig, MockProvider

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time",
                                              "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}


def mock(**config: Any) -> MockProvider:
    return MockProvider("mock", MockConfig.model_validate({"type": "mock", **config}))


def chat(body: dict[str, Any], provider: MockProvider | None = None) -> dict[str, Any]:
    return asyncio.run((provider or mock()).chat(body, None))


def stream(body: dict[str, Any], provider: MockProvider | None = None) -> list[dict[str, Any]]:
    async def collect(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c async for c in chunks]

    return asyncio.run(collect((provider or mock()).chat_stream(body, None)))


def embed(body: dict[str, Any], provider: MockProvider | None = None) -> dict[str, Any]:
    return asyncio.run((provider or mock()).embeddings(body, None))


def req(content: Any = "What is the capital of France?", model: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": content}], **extra}


def stream_content(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# -- plain replies -----------------------------------------------------------------


def test_echo_reply_shape_and_usage() -> None:
    result = chat(req())
    assert result["object"] == "chat.completion"
    assert result["model"] == "echo"
    assert result["id"].startswith("chatcmpl-mock-")
    choice = result["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"] == {"role": "assistant", "content": "Mock reply to: What is the capital of France?",
                                 "refusal": None}
    usage = result["usage"]
    assert usage["prompt_tokens"] == 2 + 6  # word counts of both messages
    assert usage["completion_tokens"] == 9
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_deterministic() -> None:
    first, second = chat(req()), chat(req())
    assert first["id"] == second["id"]
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    other = chat(req("Something else"))
    assert other["id"] != first["id"]
    assert other["choices"][0]["message"]["content"] == "Mock reply to: Something else"


def test_text_parts_and_images_are_described() -> None:
    content = [{"type": "text", "text": "What is in"}, {"type": "text", "text": "these pictures?"},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    result = chat(req(content))
    assert result["choices"][0]["message"]["content"] == "Mock reply to: What is in these pictures? [2 image(s)]"


def test_max_tokens_truncates_with_finish_length() -> None:
    result = chat(req("one two three four five", max_tokens=3))
    assert result["choices"][0]["message"]["content"] == "Mock reply to:"
    assert result["choices"][0]["finish_reason"] == "length"
    result = chat(req("one two three four five", max_completion_tokens=4))
    assert result["choices"][0]["message"]["content"] == "Mock reply to: one"
    assert result["choices"][0]["finish_reason"] == "length"


# -- tools -----------------------------------------------------------------------------


def test_tool_call_then_tool_result_then_text() -> None:
    body = req("Weather in Paris?", tools=[WEATHER_TOOL])
    first = chat(body)
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    # Arguments are a JSON *string* that satisfies the tool's schema.
    assert json.loads(call["function"]["arguments"]) == {"city": "mock", "unit": "celsius", "days": 1}
    assert chat(body)["choices"][0]["message"]["tool_calls"][0]["id"] == call["id"]  # deterministic

    follow_up = dict(body)
    follow_up["messages"] = [*body["messages"], choice["message"],
                             {"role": "tool", "tool_call_id": call["id"], "content": "18 degrees and sunny"}]
    second = chat(follow_up)["choices"][0]
    assert second["finish_reason"] == "stop"
    assert "tool_calls" not in second["message"]
    assert second["message"]["content"] == "Mock result for: 18 degrees and sunny"


def test_tool_choice_named_and_none() -> None:
    named = chat(req(tools=[WEATHER_TOOL, TIME_TOOL],
                     tool_choice={"type": "function", "function": {"name": "get_time"}}))
    assert named["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    first = chat(req(tools=[WEATHER_TOOL, TIME_TOOL]))
    assert first["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = chat(req("hi", tools=[WEATHER_TOOL], tool_choice="none"))
    assert none["choices"][0]["message"]["content"] == "Mock reply to: hi"
    assert none["choices"][0]["finish_reason"] == "stop"


# -- JSON mode -----------------------------------------------------------------------------


def test_json_object() -> None:
    result = chat(req("hello world", response_format={"type": "json_object"}))
    assert json.loads(result["choices"][0]["message"]["content"]) == {"reply": "hello world"}


def test_json_schema_answer_matches_the_schema() -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags", "ok", "score"],
              "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string"}},
                             "ok": {"type": "boolean"}, "score": {"type": "number"}}}
    result = chat(req(response_format={"type": "json_schema",
                                       "json_schema": {"name": "person", "strict": True, "schema": schema}}))
    data = json.loads(result["choices"][0]["message"]["content"])
    assert data == {"name": "mock", "age": 1, "tags": ["mock"], "ok": True, "score": 1.5}


# -- streams -------------------------------------------------------------------------------


def test_stream_joins_to_the_non_stream_content() -> None:
    body = req("Tell me three things about otters")
    whole = chat(body)
    chunks = stream({**body, "stream": True})
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) > 5  # word by word, not one piece
    assert stream_content(chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    # the last chunk carries usage with no choices, like OpenAI's include_usage chunk
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert len({c["id"] for c in chunks}) == 1


def test_stream_of_tool_calls_assembles_to_the_non_stream_calls() -> None:
    body = req("Weather?", tools=[WEATHER_TOOL])
    whole = chat(body)
    chunks = stream({**body, "stream": True})
    fragments = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(fragments) >= 2  # arguments arrive in pieces
    assembler = StreamAssembler()
    for c in chunks:
        assembler.add(c)
    assembled = assembler.result()["choices"][0]
    assert assembled["finish_reason"] == "tool_calls"
    assert assembled["message"]["tool_calls"] == whole["choices"][0]["message"]["tool_calls"]


def test_stream_truncated_by_max_tokens() -> None:
    chunks = stream(req("a b c d e f", max_tokens=2, stream=True))
    assert stream_content(chunks) == "Mock reply"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the mock asks the event loop for, recorded instead of slept:
    the pacing is proved by what was asked, not by a stopwatch."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float, *args: Any) -> Any:
        asked.append(delay)
        return await real_sleep(0)

    monkeypatch.setattr("portway_mock.asyncio.sleep", recorded)
    return asked


def test_chunk_delay_paces_the_stream(sleeps: list[float]) -> None:
    chunks = stream(req("a b c", stream=True), mock(chunk_delay_ms=40))
    assert stream_content(chunks) == "Mock reply to: a b c"
    assert sleeps == [0.04] * 6  # before each of the six words


def test_latency_delays_the_answer(sleeps: list[float]) -> None:
    chat(req("x"), mock(latency_ms=150))
    assert sleeps == [0.15]
    chat(req("x"), mock())
    assert sleeps == [0.15]  # no latency configured: no sleep at all


# -- errors on request -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (500, "server_error"), (503, "overloaded"),
                                              (529, "overloaded"), (401, "authentication"), (400, "bad_request")])
def test_error_models(status: int, kind: str) -> None:
    model = f"error-{status}"
    with pytest.raises(ProviderError) as info:
        chat(req(model=model))
    error = info.value
    assert (error.status, error.kind, error.provider) == (status, kind, "mock")
    assert error.retry_after == ("1" if status == 429 else None)
    assert model in error.message

    with pytest.raises(ProviderError) as info:
        stream(req(model=model, stream=True))  # fails before the first chunk
    assert info.value.status == status

    with pytest.raises(ProviderError):
        embed({"model": model, "input": "x"})


def test_error_prefix_without_a_status_is_an_ordinary_model() -> None:
    assert chat(req("ok", model="error-handling"))["choices"][0]["message"]["content"] == "Mock reply to: ok"


# -- embeddings --------------------------------------------------------------------------------


def decode(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_embeddings_float_and_base64_are_the_same_vector() -> None:
    floats = embed({"model": "embed", "input": ["alpha", "beta"], "encoding_format": "float"})
    b64 = embed({"model": "embed", "input": ["alpha", "beta"], "encoding_format": "base64"})
    assert floats["object"] == "list" and floats["model"] == "embed"
    assert [d["index"] for d in floats["data"]] == [0, 1]
    for f_item, b_item in zip(floats["data"], b64["data"], strict=True):
        assert f_item["object"] == b_item["object"] == "embedding"
        vector = f_item["embedding"]
        assert isinstance(b_item["embedding"], str)
        assert decode(b_item["embedding"]) == pytest.approx(vector, abs=1e-6)
        assert len(vector) == 8
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0)
    assert floats["data"][0]["embedding"] != floats["data"][1]["embedding"]
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_embeddings_are_deterministic_and_sized() -> None:
    one = embed({"model": "e", "input": "same text"})
    two = embed({"model": "e", "input": "same text"})
    assert one["data"] == two["data"] and len(one["data"]) == 1
    assert len(embed({"model": "e", "input": "x", "dimensions": 32})["data"][0]["embedding"]) == 32
    assert len(embed({"model": "e", "input": "x"}, mock(embedding_dimensions=3))["data"][0]["embedding"]) == 3


def test_embeddings_of_token_arrays() -> None:
    single = embed({"model": "e", "input": [1, 2, 3]})
    assert len(single["data"]) == 1 and single["usage"]["prompt_tokens"] == 3
    batch = embed({"model": "e", "input": [[1, 2, 3], [4]]})
    assert len(batch["data"]) == 2 and batch["usage"]["prompt_tokens"] == 4
    assert batch["data"][0]["embedding"] == single["data"][0]["embedding"]


def test_listed_models_and_no_network() -> None:
    provider = mock()
    assert {"echo", "tools", "error-429", "error-500"} <= set(provider.models())
    assert mock(models=["a", "b"]).models() == ["a", "b"]
    asyncio.run(provider.start())  # nothing to connect to: no upstream is opened
    assert provider._http is None


# -- a script ----------------------------------------------------------------------------------


SCRIPT = [
    {"say": "First answer.", "usage": {"prompt_tokens": 11, "completion_tokens": 2}},
    {"call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
    {"say": "Let me check both.", "call": [{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_oslo"},
                                          {"name": "get_time"}]},
    {"error": {"status": 429, "message": "slow down", "retry_after": 3}},
    {"say": "Cut sh", "finish_reason": "length"},
]


def test_a_script_is_played_in_order_and_its_last_turn_repeats() -> None:
    provider = mock(script=SCRIPT)
    body = req("anything")  # the question does not matter: the script answers

    first = chat(body, provider)
    assert first["choices"][0]["message"]["content"] == "First answer."
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["usage"] == {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}

    second = chat(body, provider)["choices"][0]
    [weather] = second["message"]["tool_calls"]
    assert second["finish_reason"] == "tool_calls" and second["message"]["content"] is None
    assert (weather["function"]["name"], json.loads(weather["function"]["arguments"])) == ("get_weather",
                                                                                           {"city": "Paris"})
    assert weather["id"].startswith("call_")

    third = chat(body, provider)["choices"][0]
    assert third["message"]["content"] == "Let me check both."
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in third["message"]["tool_calls"]][0] \
        == ("call_oslo", "get_weather", '{"city":"Oslo"}')
    assert third["message"]["tool_calls"][1]["function"] == {"name": "get_time", "arguments": "{}"}

    with pytest.raises(ProviderError) as info:
        chat(body, provider)
    assert (info.value.status, info.value.kind, info.value.retry_after) == (429, "rate_limit", "3")
    assert info.value.message == "provider 'mock': slow down"

    for _ in range(2):  # the last turn, again and again
        cut = chat(body, provider)["choices"][0]
        assert (cut["message"]["content"], cut["finish_reason"]) == ("Cut sh", "length")


def test_a_scripted_stream_is_the_same_answer_streamed() -> None:
    provider = mock(script=SCRIPT[2:3])
    chunks = stream(req("x", stream=True), provider)
    assembler = StreamAssembler()
    for chunk in chunks:
        assembler.add(chunk)
    streamed, whole = assembler.result()["choices"][0], chat(req("x"), provider)["choices"][0]
    assert (streamed["message"]["content"], streamed["message"]["tool_calls"], streamed["finish_reason"]) == (
        whole["message"]["content"], whole["message"]["tool_calls"], whole["finish_reason"])
    assert stream_content(chunks) == "Let me check both."
    error = mock(script=SCRIPT[3:4])
    with pytest.raises(ProviderError) as info:
        stream(req("x", stream=True), error)  # fails before the first chunk, as an HTTP error would
    assert info.value.status == 429


def test_an_error_model_still_fails_with_a_script() -> None:
    with pytest.raises(ProviderError) as info:
        chat(req(model="error-500"), mock(script=SCRIPT))
    assert info.value.status == 500


@pytest.mark.parametrize(("turn", "problem"), [
    ({}, "a turn needs 'say', 'call' or 'error'"),
    ({"say": "hi", "error": {"status": 500}}, "an error turn has only 'error'"),
    ({"sya": "hi"}, "Extra inputs are not permitted"),
    ({"error": {"status": 200}}, "greater than or equal to 400"),
    ({"call": {"arguments": {}}}, "Field required"),
    ({"say": "hi", "finish_reason": "done"}, "'stop', 'length', 'tool_calls' or 'content_filter'"),
])
def test_a_bad_script_is_a_config_error(turn: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        mock(script=[turn])
    with pytest.raises(ValueError, match="at least 1 item"):
        mock(script=[])
